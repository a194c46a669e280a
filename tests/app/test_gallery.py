"""cxrlib.app.gallery: the committed samples, dataset paths, and choices as bytes."""

from __future__ import annotations

import pytest
from app_helpers import ROOT, SAMPLES

from cxrlib.app import gallery
from cxrlib.infer.pipeline import decode


def test_safe_image_path_stays_inside_the_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.jpg").write_bytes(b"x")
    (tmp_path.parent / "secret.txt").write_text("no")
    assert gallery.safe_image_path(tmp_path, "images/x.jpg") == (tmp_path / "images/x.jpg")
    assert gallery.safe_image_path(tmp_path, "../secret.txt") is None
    assert gallery.safe_image_path(tmp_path, "/etc/passwd") is None
    assert gallery.safe_image_path(tmp_path, "images/missing.jpg") is None


def test_samples_are_permissive_every_class_and_small():
    samples = gallery.list_samples()
    assert len(samples) >= 12
    assert {s.label for s in samples} == {"covid", "normal", "pneumonia"}
    for s in samples:
        assert s.source in {"kermany", "cxnet", "ieee8023", "nih"}
        assert "NC" not in s.license and "unknown" not in s.license.lower()
        assert s.file in (SAMPLES / "PROVENANCE.md").read_text()
        decoded = decode(s.path.read_bytes(), s.file)
        assert decoded.ok, (s.file, decoded.error)
    total = sum(p.stat().st_size for p in SAMPLES.iterdir() if p.is_file())
    assert total <= 3_000_000
    assert any(s.file.endswith(".dcm") for s in samples)


def test_every_gallery_sample_passes_the_committed_gate():
    if not (ROOT / "models" / "ood.npz").exists():
        pytest.skip("no committed OOD gate")
    from cxrlib.infer import gate as ood

    gate = ood.load_gate(ROOT / "models" / "ood.npz")
    for s in gallery.list_samples():
        d = decode(s.path.read_bytes(), s.file)
        verdict = gate.assess(d.pixels, d.colourfulness)
        assert verdict.is_cxr, (s.file, verdict.reason)


def test_a_choice_becomes_bytes_with_a_stable_key(tmp_path):
    sample = gallery.list_samples()[0]
    chosen = gallery.open_sample(sample.file)
    assert chosen is not None and chosen.data == sample.path.read_bytes()
    assert (chosen.label, chosen.key) == (sample.label, f"sample:{sample.file}")
    assert gallery.open_sample("not-in-the-gallery.png") is None
    image = tmp_path / "x.png"
    image.write_bytes(b"bytes")
    choice = {"path": str(image), "source": "nih", "rel": "images/x.png", "label": "normal"}
    chosen = gallery.open_dataset_image(choice)
    assert (chosen.name, chosen.data, chosen.label) == ("nih images/x.png", b"bytes", "normal")
    image.unlink()
    with pytest.raises(FileNotFoundError, match="no longer available"):
        gallery.open_dataset_image(choice)


def test_thumbnail_is_square_and_padded():
    import numpy as np

    thumb = gallery.thumbnail(np.full((100, 50), 200, np.uint8), side=64)
    assert thumb.shape == (64, 64) and thumb.dtype == np.uint8
    assert thumb[:, 0].max() == 0 and thumb[32, 32] == 200
