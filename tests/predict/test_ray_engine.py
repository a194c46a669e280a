"""cxrlib.predict.ray_engine: Ray Data gives the local engine's rows, on a local 2-CPU Ray."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile

import pytest
from ray_procs import all_gone, started_by

from cxrlib.core.settings import SAMPLES_DIR, model_path
from cxrlib.predict import ray_engine
from cxrlib.predict.cli import main
from cxrlib.predict.inputs import list_inputs
from cxrlib.predict.rows import columns, csv_text, load_models, score_refs

ray = pytest.importorskip("ray")

# Ray start, the local models and actors loading TensorFlow: ~45-100 s on 2 shared cores.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for this module; afterwards no Ray process of it is left."""
    assert not ray.is_initialized()
    started, ours = started_by(lambda: ray_engine.init_ray(num_cpus=2))
    assert started
    assert "raylet" in ours.values(), ours
    yield
    ray.shutdown()
    assert not ray.is_initialized()
    assert all_gone(list(ours)), "Ray processes are still running after ray.shutdown()"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A dozen files: sample X-rays (three of them in a zip archive) and an unreadable one."""
    folder = tmp_path_factory.mktemp("ray_inputs")
    samples = sorted(SAMPLES_DIR.glob("*.jpg"))[:8] + sorted(SAMPLES_DIR.glob("*.dcm"))
    for f in samples:
        shutil.copy(f, folder / f.name)
    with zipfile.ZipFile(folder / "more.zip", "w") as zf:
        for f in sorted(SAMPLES_DIR.glob("*.jpg"))[8:11]:
            zf.write(f, f"scans/{f.name}")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    refs = list_inputs([str(folder)])
    assert len(refs) == 13
    return folder, refs


@pytest.fixture(scope="module")
def local_records(inputs):
    models = load_models(str(model_path()), with_segmenter=False)
    names = list(models.classifier.class_names)
    return [r.record(names) for r in score_refs(inputs[1], models)], names


def _assert_same(got, want):
    assert [g["file"] for g in got] == [w["file"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k, v in w.items():
            if isinstance(v, float):
                assert g[k] == pytest.approx(v, abs=1e-5), (w["file"], k)
            else:
                assert g[k] == v, (w["file"], k)


def test_ray_rows_equal_local_rows(local_ray, inputs, local_records):
    want, names = local_records
    assert [w["file"] for w in want if w["error"]] == [str(inputs[0] / "broken.png")]
    ds = ray_engine.score_dataset(inputs[1], str(model_path()), workers=1, batch_size=4)
    got = ray_engine.collect(ds)
    _assert_same(got, want)
    assert ray_engine.class_names_of(got) == names
    assert sum(1 for g in got if g["predicted"]) == 12
    # The CSV the Ray engine writes is the local engine's (rounded) CSV.
    assert csv_text(got, columns(names)) == csv_text(want, columns(names))


def test_cli_ray_engine_writes_csv_and_a_parquet_folder(local_ray, inputs, local_records, tmp_path):
    import pyarrow.parquet as pq

    want, names = local_records
    out_csv, out_dir = tmp_path / "p.csv", tmp_path / "parts"
    folder = str(inputs[0])
    assert main([folder, "--engine", "ray", "--workers", "2", "--out", str(out_csv)]) == 0
    table = list(csv.DictReader(out_csv.open()))
    expected = list(csv.DictReader(io.StringIO(csv_text(want, columns(names)))))
    assert table == expected
    assert main([folder, "--engine", "ray", "--workers", "1", "--out", f"{out_dir}/"]) == 0
    parts = pq.read_table(out_dir).to_pylist()
    _assert_same(sorted(parts, key=lambda r: r["file"]), sorted(want, key=lambda r: r["file"]))
    assert ray.is_initialized()  # the job used the running Ray and left it running
