"""The typed errors of cxrlib.

Every error cxrlib raises on bad input is a :class:`CxrError`; each typed error
also keeps the built-in base it always had, so ``except ValueError`` (or
``except RuntimeError``) callers still catch it.
"""

from __future__ import annotations


class CxrError(Exception):
    """The base of every error cxrlib raises on bad input."""


class ImageError(CxrError, ValueError):
    """The upload cannot be used; the message is meant for the person who sent it."""


class ModelError(CxrError, RuntimeError):
    """The model file is missing, unreadable or does not match its JSON."""


class ManifestError(CxrError, ValueError):
    """The manifest is missing columns or names unknown labels."""


class ModelServerError(CxrError, RuntimeError):
    """The model server (``$CXR_MODEL_SERVER``) cannot be reached or gave no usable answer."""
