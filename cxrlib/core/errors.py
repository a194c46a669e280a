"""The typed errors of cxrlib: each is a :class:`CxrError` and also a ``ValueError`` or a
``RuntimeError``, so callers may catch either."""

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
