"""The external check: a collection of the lung set that no training image came from."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrlib.core.errors import ManifestError
from cxrlib.evaluate import external
from cxrlib.train.data import load_gray


def _lung_set(tmp_path, rows):
    """A lung-set folder whose manifest has ``rows`` of (image, source, split); the
    images are real chest X-rays of the shared set, written as PNG."""
    (tmp_path / "images").mkdir()
    out = []
    for name, source, split, gray in rows:
        cv2.imwrite(str(tmp_path / "images" / name), gray)
        out.append({"image": f"images/{name}", "mask": "", "source": source, "split": split})
    pd.DataFrame(out).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def _real_grays(cxr_dir, n):
    m = pd.read_csv(cxr_dir / "manifest.csv")
    return [load_gray(cxr_dir / p) for p in m[m.split == "test"].path.head(n)]


def test_a_copy_is_a_duplicate_and_another_chest_is_not(cxr_dir):
    a, b = _real_grays(cxr_dir, 2)
    # A copy as another collection might hold it: squashed, brightened, re-encoded.
    copy = cv2.resize(a, (224, 224))
    copy = cv2.convertScaleAbs(copy, alpha=0.9, beta=20)
    copy = cv2.imdecode(cv2.imencode(".jpg", copy, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], 0)
    thumbs = np.stack([external.thumbnail(g) for g in (a, b)])
    near = external.nearest_similarity(np.stack([external.thumbnail(copy)]), thumbs)
    assert near[0] > 0.99 >= external.DUPLICATE_SIMILARITY
    other = external.nearest_similarity(thumbs[1:], thumbs[:1])
    assert other[0] < external.DUPLICATE_SIMILARITY
    assert np.isclose(float(thumbs[0] @ thumbs[0]), 1.0, atol=1e-5)
    assert external.nearest_similarity(thumbs, thumbs[:0]).tolist() == [-1.0, -1.0]


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    # Wilson (1927); the last worked by hand: centre 0.4229, half-width 0.0580.
    [(5, 10, (0.2366, 0.7634)), (0, 10, (0.0, 0.2775)), (116, 275, (0.3649, 0.4809))],
)
def test_wilson_interval(k, n, expected):
    assert external.wilson_interval(k, n) == pytest.approx(expected, abs=1e-4)
    assert external.wilson_interval(0, 0) is None


def test_answers_counts_each_class_and_the_confident_ones():
    probs = np.array([[0.05, 0.9, 0.05], [0.2, 0.7, 0.1], [0.95, 0.04, 0.01], [0.3, 0.6, 0.1]])
    got = external.answers(probs, ("covid", "normal", "pneumonia"))
    assert got["called"] == {"covid": 1, "normal": 3, "pneumonia": 0}
    assert got["share"] == {"covid": 0.25, "normal": 0.75, "pneumonia": 0.0}
    assert got["ci95"]["pneumonia"][0] == 0.0 and got["ci95"]["normal"][1] < 1
    # 0.9 counts as confident (at least CONFIDENT); 0.7 and 0.6 do not.
    assert got["confident"] == {"covid": 1, "normal": 1, "pneumonia": 0}
    assert got["confident_share"]["covid"] == 0.25 and got["confident_at"] == 0.9
    assert external.answers(np.zeros((0, 3)), ("a", "b", "c"))["share"]["a"] is None


def test_collection_frame_reads_one_source_of_the_lung_set(tmp_path, cxr_dir):
    g = _real_grays(cxr_dir, 1)[0]
    root = _lung_set(
        tmp_path,
        [
            ("a.png", "openist_normal", "train", g),
            ("b.png", "other", "test", g),
            ("c.png", "openist_normal", "test", g),
        ],
    )
    frame = external.collection_frame(root, external.SOURCE)
    assert list(frame["path"]) == ["images/a.png", "images/c.png"]
    assert list(frame["split"]) == ["train", "test"] and set(frame["source"]) == {"openist_normal"}
    assert all(load_gray(f).shape == g.shape for f in frame["file"])
    with pytest.raises(ManifestError, match="does not exist"):
        external.collection_frame(tmp_path / "nowhere", external.SOURCE)
    with pytest.raises(ManifestError, match="no image of 'absent'"):
        external.collection_frame(root, "absent")


def test_external_check_scores_as_the_model_predicts(tmp_path, cxr_dir, tiny_model_path):
    from cxrlib.evaluate.metrics import diagnosed_probabilities
    from cxrlib.infer.classifier import load_classifier

    grays = _real_grays(cxr_dir, 4)
    root = _lung_set(
        tmp_path,
        [
            (f"{i}.png", "openist_normal", split, g)
            for i, (split, g) in enumerate(zip(("train", "train", "val", "test"), grays))
        ],
    )
    clf = load_classifier(tiny_model_path)
    # The reference set holds a copy of image 1 (and one unrelated chest).
    cv2.imwrite(str(tmp_path / "copy.jpg"), cv2.resize(grays[1], (200, 200)))
    reference = [
        str(tmp_path / "copy.jpg"),
        str(cxr_dir / pd.read_csv(cxr_dir / "manifest.csv").path[0]),
    ]
    section = external.external_check(clf, root, reference)
    rec = section["collections"]["openist_normal"]
    probs = diagnosed_probabilities(clf, sorted(str(root / f"images/{i}.png") for i in range(4)))
    called = np.bincount(probs.argmax(1), minlength=3)
    assert rec["subsets"]["all"]["called"] == dict(zip(clf.class_names, called.tolist()))
    unseen = np.bincount(probs[2:].argmax(1), minlength=3)  # the val and test images
    assert rec["subsets"]["segmenter_unseen"]["n"] == 2
    assert rec["subsets"]["segmenter_unseen"]["called"] == dict(
        zip(clf.class_names, unseen.tolist())
    )
    assert rec["duplicates"]["found"] == 1 and rec["duplicates"]["highest_similarity"] > 0.99
    assert rec["input_check_refused"] == 0  # real chest X-rays pass the app's input check
    assert [p["path"] for p in rec["predictions"]] == [f"images/{i}.png" for i in range(4)]
    assert np.allclose([p["probs"] for p in rec["predictions"]], probs, atol=1e-4)
    assert section["reference_images"] == 2 and section["views"] == 1
