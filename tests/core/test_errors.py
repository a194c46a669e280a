"""cxrlib.core.errors: every typed error is a CxrError and keeps its old built-in base."""

from __future__ import annotations

import pytest

from cxrlib.core.errors import CxrError, ImageError, ManifestError, ModelError, ModelServerError


@pytest.mark.parametrize(
    ("error", "base"),
    [
        (ImageError, ValueError),
        (ModelError, RuntimeError),
        (ManifestError, ValueError),
        (ModelServerError, RuntimeError),
    ],
)
def test_each_error_is_a_cxr_error_and_its_old_base(error, base) -> None:
    assert issubclass(error, CxrError) and issubclass(error, base)
    with pytest.raises(CxrError, match="bad input"):
        raise error("bad input")
    with pytest.raises(base):  # callers that catch the old base still catch it
        raise error("bad input")


def test_the_errors_are_distinct() -> None:
    assert not issubclass(ImageError, ManifestError) and not issubclass(ManifestError, ImageError)
    assert not issubclass(ModelError, ValueError)


def test_decode_image_raises_the_core_image_error() -> None:
    from cxrlib.io.decode import decode_image

    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")


def test_read_manifest_raises_the_core_manifest_error(tmp_path) -> None:
    from cxrlib.train.data import read_manifest

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\na.png\n")
    with pytest.raises(ManifestError, match="lacks column"):
        read_manifest(manifest)
