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


class PacsError(CxrError, RuntimeError):
    """The PACS (``$CXR_PACS_URL``) cannot be used; the message says what to check."""


class PacsUnreachableError(PacsError):
    """No answer from the PACS: refused, timed out or an unknown host."""


class PacsAuthError(PacsError):
    """The PACS refused the credentials (HTTP 401 or 403); the message never holds them."""


class PacsNotFoundError(PacsError):
    """The study, series or instance asked for is not (or no longer) in the PACS."""


class NotAnImageError(PacsError, ValueError):
    """The instance holds no pixel data (a structured report, a presentation state ...)."""


class InputRefusedError(PacsError, ValueError):
    """The input gate refused the image: not a frontal chest X-ray, so it is not scored.

    Raised when a PACS instance is scored; the message gives the gate's reason.
    """
