"""Batch scoring: many images (files, folders or zip archives) to a CSV.

    python -m cxrlib.predict scans/ more.dcm archive.zip --out predictions.csv [--focus]

Every input is read with :func:`cxrlib.io.imaging.decode_image` and checked by the
out-of-distribution gate; files that cannot be read or are not chest X-rays
are listed with the reason and the rest are still scored. The app's Batch
page calls :func:`score_items` too.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrlib.io.imaging import ImageError, decode_image
from cxrlib.infer.classifier import DEFAULT_MODEL_PATH, Classifier, load_classifier
from cxrlib.infer.gate import header_concerns

MAX_ZIP_MEMBERS = 2000
MAX_ZIP_MEMBER_BYTES = 60_000_000
MAX_ZIP_TOTAL_BYTES = 1_000_000_000
# "" because DICOM files from PACS exports and DICOMDIR folders often have no extension.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".gif", ".webp", ""}
)


def is_image_name(relative_path: str) -> bool:
    """Whether a file found in a folder or zip archive is one to score.

    Its name has an image suffix or none, and no part of its path is hidden
    (``.DS_Store``, ``.git/``) or macOS metadata (``__MACOSX/``).
    """
    path = relative_path.replace("\\", "/")
    parts = [p for p in path.split("/") if p]
    if not parts or path.endswith("/") or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


@dataclass
class BatchRow:
    """One scored (or refused) input. Never holds patient fields."""

    name: str
    predicted: str = ""
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    is_cxr: bool | None = None
    ood_score: float | None = None
    lung_focus: float | None = None
    flags: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self, class_names: Iterable[str]) -> dict[str, Any]:
        d: dict[str, Any] = {
            "file": self.name,
            "predicted": self.predicted,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
        }
        for c in class_names:
            p = self.probabilities.get(c)
            d[f"p_{c}"] = None if p is None else round(p, 4)
        d.update(
            {
                "is_cxr": self.is_cxr,
                "ood_score": None if self.ood_score is None else round(self.ood_score, 3),
                "lung_focus": None if self.lung_focus is None else round(self.lung_focus, 3),
                "flags": "; ".join(self.flags),
                "error": self.error,
            }
        )
        return d


def expand_zip(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """Yields (member name, bytes) of image-like members; guards against zip bombs."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageError(f"{name} is not a readable zip archive ({exc})") from exc
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ImageError(f"{name} holds {len(infos):,} files; the limit is {MAX_ZIP_MEMBERS:,}")
    if sum(i.file_size for i in infos) > MAX_ZIP_TOTAL_BYTES:
        raise ImageError(f"{name} unpacks to more than {MAX_ZIP_TOTAL_BYTES // 1_000_000:,} MB")
    for info in infos:
        if not is_image_name(info.filename):
            continue
        if info.file_size > MAX_ZIP_MEMBER_BYTES:
            yield f"{name}/{info.filename}", b""  # scored as an error below
            continue
        try:
            yield f"{name}/{info.filename}", zf.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError):
            yield f"{name}/{info.filename}", b""


def expand_items(items: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes | ImageError]]:
    """Expands zip archives among (name, bytes) items; errors are passed on, not raised."""
    for name, data in items:
        if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
            try:
                yield from expand_zip(name, data)
            except ImageError as exc:
                yield name, exc
        else:
            yield name, data


def score_items(
    items: Iterable[tuple[str, bytes]],
    classifier: Classifier,
    gate: Callable[..., Any] | None = None,
    focus: Callable[[Any, int], float | None] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> list[BatchRow]:
    """Scores each (name, bytes) item; bad files become rows with ``error`` set.

    Args:
        items: (file name, raw bytes); zip archives are expanded.
        classifier: The loaded classifier.
        gate: ``assess(gray, colourfulness=...)`` from :mod:`cxrlib.infer.gate`, or None to skip.
        focus: Optional ``f(gray, class_index) -> lung focus`` of the predicted class
            (Grad-CAM + segmenter); slow, so off by default.
        progress: Called as ``progress(i, name)`` after each item.
    """
    rows: list[BatchRow] = []
    for i, (name, data) in enumerate(expand_items(items)):
        row = BatchRow(name=name)
        try:
            if isinstance(data, ImageError):
                raise data
            decoded = decode_image(data, name)
            gray = decoded.pixels
            row.flags.extend(decoded.notices)
            row.flags.extend(header_concerns(decoded.meta))
            if gate is not None:
                verdict = gate(gray, colourfulness=decoded.meta.get("colourfulness"))
                row.is_cxr, row.ood_score = bool(verdict.is_cxr), float(verdict.score)
                if not verdict.is_cxr:
                    row.flags.append(verdict.reason)
            if row.is_cxr is not False:
                probs = classifier.predict([gray])[0]
                k = int(probs.argmax())
                row.predicted = classifier.class_names[k]
                row.confidence = float(probs[k])
                row.probabilities = {c: float(p) for c, p in zip(classifier.class_names, probs)}
                if focus is not None:
                    row.lung_focus = focus(gray, k)
                    if row.lung_focus is not None and row.lung_focus < 0.5:
                        row.flags.append("heatmap mostly outside the lungs")
        except ImageError as exc:
            row.error = str(exc)
        rows.append(row)
        if progress is not None:
            progress(i, name)
    return rows


def gradcam_lung_focus(explainer: Any, segmenter: Any) -> Callable[[Any, int | None], float | None]:
    """``f(gray, class_index) -> lung focus`` of that class's Grad-CAM, for ``score_items``.

    ``class_index`` is the predicted class (the model's own prediction, averaged over
    its test-time views); None explains the original image's most probable class.
    None when the segmenter finds no lungs (a focus of 0 would wrongly read as
    "the model looked outside the lungs").
    """
    import numpy as np

    from cxrlib.infer.focus import lung_focus

    def focus(gray: Any, class_index: int | None = None) -> float | None:
        mask = segmenter.segment(gray)
        if not np.any(mask):
            return None
        return lung_focus(explainer.explain(gray, "gradcam", class_index), mask)

    return focus


def rows_to_csv(rows: Iterable[BatchRow], class_names: Iterable[str]) -> str:
    """CSV text of batch rows (no patient fields: only the file name and results)."""
    class_names = list(class_names)
    buf = io.StringIO()
    dicts = [r.as_dict(class_names) for r in rows]
    fields = list(BatchRow(name="").as_dict(class_names))
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for d in dicts:
        w.writerow({k: ("" if v is None else v) for k, v in d.items()})
    return buf.getvalue()


def iter_paths(paths: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                inside = f.relative_to(p).as_posix()
                if f.is_file() and (is_image_name(inside) or f.suffix.lower() == ".zip"):
                    yield str(f), f.read_bytes()
        elif p.exists():
            yield str(p), p.read_bytes()
        else:
            yield str(p), b""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="image files, folders or zip archives")
    p.add_argument("--out", default="-", help="CSV file (default: standard output)")
    p.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    p.add_argument("--no-gate", action="store_true", help="score images the OOD gate rejects too")
    p.add_argument("--focus", action="store_true", help="add Grad-CAM lung focus (slower)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    clf = load_classifier(a.model)
    gate: Callable[..., Any] | None = None
    if not a.no_gate:
        from cxrlib.infer.gate import assess

        gate = assess
    focus = None
    if a.focus:
        from cxrlib.infer.explain import Explainer
        from cxrlib.infer.lungs import load_segmenter

        focus = gradcam_lung_focus(Explainer(clf), load_segmenter())

    def progress(i: int, name: str) -> None:
        print(f"\r{i + 1} scored", end="", file=sys.stderr, flush=True)

    rows = score_items(iter_paths(a.inputs), clf, gate=gate, focus=focus, progress=progress)
    print(file=sys.stderr)
    text = rows_to_csv(rows, clf.class_names)
    if a.out == "-":
        sys.stdout.write(text)
    else:
        Path(a.out).write_text(text)
        bad = sum(1 for r in rows if r.error)
        print(f"wrote {a.out}: {len(rows)} rows, {bad} unreadable", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
