"""Fixtures of the app tests (defined in app_helpers, shared with tests/test_privacy.py)."""

from app_helpers import app_env, app_model, heatmap_calls, segmenter_path  # noqa: F401
