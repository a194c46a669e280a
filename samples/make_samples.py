"""Rebuilds the gallery in samples/ from ../shared/cxr (test split, permissive licences only).

    .venv/bin/python samples/make_samples.py [--data ../shared/cxr]

Copies the chosen JPEG files byte for byte, makes one synthetic DICOM from one
of them (no patient data: every patient, study and institution field is left
out), and writes samples.csv (read by the app) and PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent

#: (path in the shared manifest, note) - all from the TEST split.
CHOSEN: tuple[tuple[str, str], ...] = (
    ("images/cxnet/330.jpg", "burned-in letter in the corner"),
    ("images/cxnet/265.jpg", ""),
    ("images/cxnet/396.jpg", "figure from a publication: arrow drawn on the image"),
    ("images/ieee8023/40779_2020_233_Fig2_HTML-a.jpg", "figure from a publication (panel a)"),
    ("images/kermany/tr_IM-0675-0001.jpg", "paediatric"),
    ("images/kermany/tr_IM-0245-0001.jpg", "paediatric, stored squashed to 224 x 224"),
    ("images/nih/00003353_006.jpg", "adult"),
    ("images/nih/00002576_008.jpg", "adult"),
    ("images/kermany/tr_person1180_virus_2011.jpg", "paediatric, viral"),
    (
        "images/kermany/tr_person405_bacteria_1817.jpg",
        "paediatric, bacterial, squashed to 224 x 224",
    ),
    ("images/nih/00007408_000.jpg", "adult; NIH pneumonia labels are text-mined and noisy"),
    ("images/nih/00001200_000.jpg", "adult; NIH pneumonia labels are text-mined and noisy"),
)
#: The image the synthetic DICOM is made from.
DICOM_FROM = "images/nih/00003353_006.jpg"
DICOM_NAME = "normal_nih_00003353_006_synthetic.dcm"

PERMISSIVE = ("CC BY 4.0", "CC BY", "CC BY-SA", "NIH Clinical Center")

CITATIONS: dict[str, str] = {
    "cxnet": (
        'A. Haghanifar, M. M. Majdabadi, Y. Choi, S. Deivalakshmi, S. Ko, "COVID-CXNet: '
        'Detecting COVID-19 in frontal chest X-ray images using deep learning", Multimedia '
        "Tools and Applications (2022), doi:10.1007/s11042-022-12156-z. Images CC BY 4.0 "
        "(figshare doi:10.6084/m9.figshare.12580328)."
    ),
    "ieee8023": (
        'J. P. Cohen, P. Morrison, L. Dao, K. Roth, T. Q. Duong, M. Ghassemi, "COVID-19 Image '
        'Data Collection: Prospective Predictions Are the Future", arXiv:2006.11988 (2020).'
    ),
    "kermany": (
        'D. S. Kermany et al., "Identifying Medical Diagnoses and Treatable Diseases by '
        'Image-Based Deep Learning", Cell 172(5), 1122-1131 (2018). Data CC BY 4.0 (Mendeley '
        "Data doi:10.17632/rscbjbr9sj.2)."
    ),
    "nih": (
        'X. Wang et al., "ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks", '
        "CVPR 2017 (NIH Clinical Center; unrestricted use, citation requested); subset "
        "selected by T. Ozturk et al., Computers in Biology and Medicine 121, 103792 (2020)."
    ),
}


def sample_name(row: pd.Series) -> str:
    return f"{row['label']}_{row['source']}_{Path(row['path']).stem}.jpg"


def make_dicom(gray: np.ndarray) -> bytes:
    """A 12-bit MONOCHROME2 DX-like DICOM of ``gray`` with a display window, no patient data."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    seed = [DICOM_FROM]
    sop_uid = generate_uid(entropy_srcs=seed + ["sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=seed + ["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=seed + ["series"])
    ds.Modality = "DX"
    ds.ConversionType = "WSD"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.ImageComments = "Synthetic sample made by CXR Lens from a public NIH image; no patient data"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = gray.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    # 8-bit -> 12-bit with an offset, so the file's window (not min-max) matters.
    values = (gray.astype(np.uint16) * 12 + 400).astype(np.uint16)
    ds.WindowCenter = 400 + 12 * 128
    ds.WindowWidth = 12 * 256
    ds.RescaleSlope = 1
    ds.RescaleIntercept = 0
    ds.PixelData = values.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "cxr"))
    a = p.parse_args()
    data = Path(a.data)
    m = pd.read_csv(data / "manifest.csv", dtype=str, keep_default_na=False).set_index("path")
    rows = []
    for path, note in CHOSEN:
        r = m.loc[path]
        if r["split"] != "test":
            raise SystemExit(f"{path} is not in the test split")
        if not r["license"].startswith(PERMISSIVE) or "NC" in r["license"]:
            raise SystemExit(f"{path} has a non-permissive licence: {r['license']}")
        row = {"path": path, **r.to_dict()}
        name = sample_name(pd.Series(row))
        shutil.copyfile(data / path, HERE / name)
        rows.append({**row, "file": name, "note": note})
    src = m.loc[DICOM_FROM]
    gray = np.asarray(Image.open(data / DICOM_FROM).convert("L"))
    (HERE / DICOM_NAME).write_bytes(make_dicom(gray))
    rows.append(
        {
            "path": DICOM_FROM,
            **src.to_dict(),
            "file": DICOM_NAME,
            "note": "synthetic DICOM (12-bit, display window set) made from this image",
        }
    )
    with (HERE / "samples.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "label", "source", "license", "original", "note"])
        w.writeheader()
        for r in rows:
            w.writerow(
                {
                    "file": r["file"],
                    "label": r["label"],
                    "source": r["source"],
                    "license": r["license"],
                    "original": r["path"],
                    "note": r["note"],
                }
            )
    lines = [
        "# Gallery samples: provenance",
        "",
        "Twelve chest X-rays copied byte for byte from the **test split** of `../shared/cxr`",
        "(never used for training or model selection), four per class, only from sources whose",
        "licence permits redistribution, plus one synthetic DICOM made from one of them.",
        "Rebuild with `.venv/bin/python samples/make_samples.py`. The labels are the datasets'",
        "labels, not a clinical reading. `samples.csv` is the same list for the app.",
        "",
        "| file | label | source | original path in ../shared/cxr | original repository / path | licence | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        orig = f"{r.get('orig_repo', '')} `{r.get('orig_path', '')}`"
        lines.append(
            f"| `{r['file']}` | {r['label']} | {r['source']} | `{r['path']}` | {orig} | "
            f"{r['license']} | {r['note']} |"
        )
    lines += [
        "",
        f"The DICOM `{DICOM_NAME}` was written with pydicom from `{DICOM_FROM}`: pixels",
        "scaled to 12 bits (value = 12 x pixel + 400, window centre 1936, width 3072), Modality",
        "DX, Secondary Capture SOP class, UIDs generated from the source path. It has no patient",
        "name, ID, birth date, accession number, institution or dates.",
        "",
        "## Citations",
        "",
    ]
    for source in sorted({r["source"] for r in rows}):
        lines.append(f"- **{source}**: {CITATIONS[source]}")
    lines.append("")
    (HERE / "PROVENANCE.md").write_text("\n".join(lines))
    total = sum((HERE / r["file"]).stat().st_size for r in rows)
    print(f"wrote {len(rows)} samples, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
