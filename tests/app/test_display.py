"""cxrlib.app.analysis: the display controls only redraw cached arrays."""

from __future__ import annotations

import numpy as np
from test_texts import _diagnosis

from cxrlib.app.analysis import DisplaySettings
from cxrlib.infer.overlay import overlay


def test_display_settings_draw_and_describe_the_overlay():
    d = _diagnosis([0.8, 0.1, 0.1], [[0.7, 0.9], [0.0, 0.2], [0.0, 0.2]], True)
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    d = type(d)(**{**d.__dict__, "heatmap": heat, "lung_mask": heat > 0.5})
    pixels = np.full((4, 4), 120, np.uint8)
    shown = DisplaySettings(opacity=0.7, colormap="viridis", outline=True, hottest=True, share=20)
    expected = overlay(
        pixels, heat, opacity=0.7, colormap="viridis", hottest_percent=20, lung_mask=d.lung_mask
    )
    np.testing.assert_array_equal(shown.overlay(pixels, d), expected)
    assert shown.described(d) == {
        "opacity": "0.70",
        "colour map": "viridis",
        "lung outline": "on",
        "hottest region only": "20%",
    }
    plain = DisplaySettings(outline=False)
    assert plain.described(d)["lung outline"] == "off"
    assert plain.described(d)["hottest region only"] == "off"
