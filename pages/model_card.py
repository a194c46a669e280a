"""Trust / Model card: what the model is for, what it learned from, and its limits."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cxrlib.app.model_files import model_meta
from cxrlib.core.metrics import Metrics
from cxrlib.core.settings import model_path
from cxrlib.describe import comparison, modelcard, results
from pages import _compat, _sections

CONFOUNDS = """
The training data has shortcuts a network can exploit instead of looking at the lungs.
Assume the model uses some of them:

- **Paediatric pneumonia.** Almost all pneumonia images (Kermany) are of **children aged
  1-5 from one hospital** in Guangzhou; the only adult pneumonia comes from a few hundred
  noisy NIH images and a handful of publication figures. The model can learn
  "child-sized chest = pneumonia". Adult pneumonia is its weakest case.
- **COVID figures from papers.** Many COVID images (ieee8023, COVID-CXNet, Figure 1) are
  **figures from publications and web pages**: cropped, re-windowed, with **arrows, panel
  letters and text** drawn on them. Markup can predict "covid" by itself.
- **Squashed 224 px sources.** The Radiography images and most Kermany images were stored
  **resized to 224 x 224 with the aspect ratio lost**, the others at their native aspect.
  Resolution and stretching differ by source, so by class.
- **Hospitals and scanners.** The normal images come mostly from NIH/RSNA (adult,
  US) and Kermany (children, China); the COVID images mostly from Spanish, Italian and
  German hospitals and from papers. Each class has its own "look".
- **Noisy labels.** NIH pneumonia labels were text-mined from reports (published precision
  well below 90%); COVID labels are "mostly PCR-positive" and many COVID images look normal.
"""

LUNG_CROP_NOTE = """
**What the model does about them.** It sees only the lung region that the lung segmenter finds
(the cyan box on the Diagnose page), so letters, arrows and borders outside it cannot reach it,
and it was trained with synthetic letters and arrows pasted on its input. That does not remove a
child's or a hospital's "look" inside the lungs: the audit below measures what is left.
"""

LUNG_MASK_NOTE = """
Inside that box, everything outside the lung mask (widened slightly, so the pleura and the
costophrenic angles stay in) is filled with the lungs' mean grey before the model looks: the
heart, mediastinum, diaphragm and soft tissue cannot reach it either. A lung the segmenter misses
(a white-out, a large effusion) is hidden from the model too.
"""

CITATIONS = """
**Chest X-rays (classifier training and evaluation, `../shared/cxr`)**

- *ieee8023* COVID-19 Image Data Collection: J. P. Cohen, P. Morrison, L. Dao, K. Roth,
  T. Q. Duong, M. Ghassemi, arXiv:2006.11988 (2020); arXiv:2003.11597. Per-image licences
  (CC BY, CC BY-SA, CC BY-NC-SA, CC BY-NC-ND, unknown).
- *Figure 1* COVID-19 Chest X-ray Dataset: L. Wang, Z. Q. Lin, A. Wong, "COVID-Net",
  Scientific Reports 10, 19549 (2020). Research use only (README), no licence file.
- *COVID-CXNet*: A. Haghanifar et al., Multimedia Tools and Applications (2022),
  doi:10.1007/s11042-022-12156-z. Images CC BY 4.0 (figshare 10.6084/m9.figshare.12580328).
- *COVID-19 Radiography Database* (Kaggle): M. E. H. Chowdhury et al., IEEE Access 8,
  132665 (2020); T. Rahman et al., Computers in Biology and Medicine 132, 104319 (2021).
  Kaggle terms; underlying collections keep their own licences.
- *Kermany* paediatric pneumonia: D. S. Kermany et al., Cell 172(5), 1122-1131 (2018).
  CC BY 4.0 (Mendeley Data 10.17632/rscbjbr9sj.2).
- *NIH* ChestX-ray8 subset: X. Wang et al., CVPR 2017 (unrestricted use, citation
  requested); subset selected by T. Ozturk et al., Computers in Biology and Medicine 121,
  103792 (2020).

**Lung masks (segmenter training, `../shared/lungs`)**

- *GeneralBlockchain* COVID-19 Chest X-ray Segmentations Dataset (2020), CC BY 4.0; images
  from ieee8023 (per-image licences).
- *V7 Labs* COVID-19 X-ray lung annotations (CC BY 4.0) on ieee8023 images.
- *OpenIST* Chest X-ray set (pi-null-mezon/OpenIST): no licence stated; research use only.

Full provenance: `../shared/cxr/SOURCES.md`, `../shared/lungs/SOURCES.md`; the gallery's
samples: `samples/PROVENANCE.md`.
"""


def _intended_use() -> None:
    st.subheader("Intended use")
    st.error(
        "**Not for diagnosis.** CXR Lens is a research and teaching demo, not a medical device. "
        "It must not be used to screen, triage, diagnose or treat anyone.",
        icon=":material/block:",
    )
    st.markdown(
        "- **What it is for:** showing students and researchers how a convolutional network "
        "sorts frontal chest X-rays into *covid*, *normal* and *pneumonia*, where it looks "
        "(Grad-CAM and related heatmaps), and how such a model can be right for the wrong "
        "reasons.\n"
        "- **Inputs it knows:** frontal (PA/AP) chest radiographs of adults and children, as "
        "8-bit images or DICOM. The input check refuses most other pictures; for a DICOM "
        "file it also warns when the header names a lateral or oblique view, another "
        "modality or another body part.\n"
        "- **Out of scope:** lateral views, CT, other diseases (it always answers with one of "
        "three classes), images from other hospitals than its sources (expect lower accuracy), "
        "any clinical decision."
    )


def _training_data(meta: dict) -> None:
    st.subheader("Training data")
    counts = modelcard.train_counts_table(meta)
    if len(counts):
        st.dataframe(counts, width="stretch")
        st.caption(
            f"Training split of `../shared/cxr`: {int(meta.get('n_train', 0)):,} images "
            f"({int(meta.get('n_val', 0)):,} more for validation). Splits are patient-disjoint "
            "where patient ids exist."
        )
    else:
        st.info("The model's JSON has no training counts.")
    st.markdown("**Confounds, stated plainly**")
    st.markdown(CONFOUNDS)
    if (meta.get("preprocess") or {}).get("lung_crop"):
        st.markdown(LUNG_CROP_NOTE)
    if (meta.get("preprocess") or {}).get("lung_mask"):
        st.markdown(LUNG_MASK_NOTE)


def _model_lines(meta: dict) -> list[str]:
    """The preprocessing, architecture, probabilities, batches and training lines."""
    cfg = meta.get("train_config") or {}
    lines = [
        "- **Preprocessing** (the same for training, evaluation and this app): "
        + modelcard.describe_preprocessing(meta.get("preprocess") or {}),
        f"- **Architecture:** {modelcard.describe_architecture(cfg)}, trained from scratch (no "
        f"pretrained weights), {int(meta.get('params', 0)):,} parameters; Grad-CAM layer "
        "`last_conv`.",
        "- **Probabilities:** " + modelcard.describe_calibration(meta),
    ]
    if cfg:
        lines.append("- **Batches:** " + modelcard.describe_training(cfg))
    if meta.get("best_epoch"):
        lines.append(
            f"- **Training:** best epoch {meta['best_epoch']} of "
            f"{meta.get('epochs_run', '?')} (validation macro-F1), "
            f"{float(meta.get('train_seconds', 0)) / 60:.0f} min, "
            f"Keras {meta.get('keras_version', '?')}."
        )
    return lines


def _architecture(meta: dict, path: Path) -> None:
    st.subheader("Preprocessing and architecture")
    if not meta:
        st.warning(
            f"No model description found (`{path.with_suffix('.json').name}`); train a model "
            "with `python -m cxrlib.train`.",
            icon=":material/warning:",
        )
    else:
        st.markdown("\n".join(_model_lines(meta)))


def _performance(metrics: Metrics) -> None:
    st.subheader("Performance")
    test = metrics.test
    if test:
        ci = test.ci95
        st.markdown(
            f"Internal **test** split ({test.n or 0:,} images, same sources as training): "
            f"accuracy {results.fmt_ci(test.accuracy, ci.get('accuracy'))}, balanced "
            f"accuracy {results.fmt_ci(test.balanced_accuracy, ci.get('balanced_accuracy'))}, "
            f"macro-F1 {test.macro_f1 or 0:.3f}, ECE {test.ece or 0:.3f}."
        )
        _sections.metric_table(results.per_class_table(test))
        st.caption(
            "These images come from the same sources as the training images, so they share "
            "the confounds above: expect lower accuracy on images from anywhere else."
        )
    else:
        st.info("No test metrics yet (models/cxr_classifier.metrics.json).")


def _comparison(meta: dict, metrics: Metrics) -> None:
    rows = comparison.comparisons(meta, metrics)
    if len(rows) <= 1:
        return
    st.markdown("**Why not a model that scores higher?**")
    chance = comparison.chance(metrics)
    st.markdown("\n".join(f"- {line}" for line in comparison.describe_comparisons(rows, chance)))
    note = comparison.comparison_note(rows)
    if note:
        st.markdown(note)
    _sections.metric_table(comparison.comparison_table(rows))
    st.caption(
        "Each model scored on the same internal test split as it predicts, intact and with "
        "the lung fields filled with the image's mean (the audit's ablation). Recorded by "
        "`python -m cxrlib.evaluate audit --model <other model> --split test --ablate "
        "--record-alternative <name>`; the outside collection's column by "
        "`python -m cxrlib.evaluate external ../shared/lungs --model <other model> "
        "--record-alternative <name>`, where it was measured."
    )


def _provenance(meta: dict, path: Path) -> None:
    st.subheader("Provenance")
    sha = meta.get("weights_sha256") or "unknown"
    st.markdown(f"**Weights SHA-256** `{sha}`  \n**Model file** `{path.name}`")
    st.markdown(f"**Commands that made it** (seed {meta.get('seed', 'unknown')})")
    st.code(modelcard.making_commands(meta), language="bash", wrap_lines=True)
    if meta.get("manifest_sha256"):
        st.caption(f"Training manifest SHA-256 {meta['manifest_sha256']}")


def main() -> None:
    st.title("Trust / Model card")
    path = model_path()
    meta = model_meta(path)
    metrics = _sections.load_metrics(path) or Metrics()
    _intended_use()
    _training_data(meta)
    _architecture(meta, path)
    _performance(metrics)
    _sections.external_section(metrics, level="markdown")
    if _sections.has_audit(metrics):
        st.subheader("Shortcut audit")
        _sections.audit_sections(metrics, level="markdown")
    _comparison(meta, metrics)
    _provenance(meta, path)
    st.subheader("Data licences and citations")
    st.markdown(CITATIONS)


_compat.page_setup()
main()
