"""cxrlib.predict inputs and outputs: manifests, zips on disk, and CSV / Parquet files."""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cxrlib.predict.cli import OutputError, main, out_kind
from cxrlib.predict.inputs import MAX_ZIP_MEMBERS, list_inputs


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (160, 200), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_a_manifest_lists_its_paths_relative_to_itself(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(_png(1))
    with zipfile.ZipFile(tmp_path / "img" / "b.zip", "w") as zf:
        zf.writestr("x/b1.png", _png(2))
        zf.writestr("notes.txt", "not an image")
    (tmp_path / "m.csv").write_text(
        f"path,label\nimg/a.png,covid\nimg/b.zip,normal\n{tmp_path}/img/gone.png,normal\n"
    )
    refs = list_inputs([str(tmp_path / "m.csv")])
    assert [r.name for r in refs] == [
        str(tmp_path / "img" / "a.png"),
        f"{tmp_path / 'img' / 'b.zip'}/x/b1.png",
        str(tmp_path / "img" / "gone.png"),
    ]
    assert refs[0].load() == _png(1) and refs[1].load() == _png(2)
    assert "no such file" in str(refs[2].load())


def test_manifests_and_zips_that_cannot_be_listed_become_error_rows(tmp_path):
    (tmp_path / "no_path.csv").write_text("label\ncovid\n")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w") as zf:
        for i in range(MAX_ZIP_MEMBERS + 1):
            zf.writestr(f"{i}.png", b"")
    refs = list_inputs([str(tmp_path / n) for n in ("no_path.csv", "bad.zip", "bomb.zip")])
    assert len(refs) == 3
    assert "no 'path' or 'file' column" in refs[0].error
    assert "not a readable zip" in refs[1].error
    assert "the limit is" in refs[2].error


@pytest.mark.parametrize(
    ("out", "kind"),
    [("-", "stdout"), ("p.csv", "csv"), ("p.PARQUET", "parquet"), ("parts/", "parquet-folder")],
)
def test_out_kind(out, kind):
    assert out_kind(out) == kind


def test_an_unknown_out_suffix_is_refused(tmp_path, capsys):
    with pytest.raises(OutputError):
        out_kind("p.xlsx")
    assert main([str(tmp_path), "--out", str(tmp_path / "p.xlsx")]) == 2
    assert "p.xlsx" in capsys.readouterr().err


def test_csv_and_parquet_hold_the_same_rows(tiny_model_path, tmp_path):
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(_png(3))
    (tmp_path / "in" / "y.png").write_bytes(b"not an image")
    common = [str(tmp_path / "in"), "--model", str(tiny_model_path), "--no-gate"]
    assert main([*common, "--out", str(tmp_path / "p.csv")]) == 0
    assert main([*common, "--out", str(tmp_path / "p.parquet")]) == 0
    assert main([*common, "--out", str(tmp_path / "parts")]) == 0
    table = list(csv.DictReader((tmp_path / "p.csv").open()))
    parquet = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert pq.read_table(tmp_path / "parts").to_pylist() == parquet
    assert [r["file"] for r in parquet] == [t["file"] for t in table]
    good, bad = parquet
    assert good["predicted"] and good["error"] == "" and bad["predicted"] == "" and bad["error"]
    assert bad["confidence"] is None and bad["p_covid"] is None
    assert float(table[0]["p_covid"]) == pytest.approx(good["p_covid"], abs=5e-5)
    assert sum(good[k] for k in good if k.startswith("p_")) == pytest.approx(1, abs=1e-5)
