"""DICOM stored values to display gray: modality LUT, VOI LUT or window, inversion, colour.

The order is the standard's (PS3.3 C.11): the modality LUT (or rescale slope and
intercept), then the file's VOI LUT or window when present (else the used range),
then MONOCHROME1 or Presentation LUT Shape INVERSE inversion. pydicom is imported
inside functions: it is an optional, heavy dependency only DICOM uploads need.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from cxrlib.io.budget import TooSlow
from cxrlib.io.dicom_fields import dicom_code, dicom_float
from cxrlib.io.intensity import (
    COLOUR_CONVERTED,
    COLOUR_NOTICE,
    colourfulness,
    fmt_value,
    map_rows,
    stretch,
)


def dicom_colour(rgb: np.ndarray, meta: dict[str, Any], notices: list[str]) -> np.ndarray:
    """An RGB image (any integer depth) to gray, noting its colourfulness."""
    if rgb.dtype != np.uint8:
        rgb, _, _, _ = stretch(rgb)
    meta["colourfulness"] = colourfulness(rgb)
    if meta["colourfulness"] > COLOUR_NOTICE:
        notices.append(COLOUR_CONVERTED)
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("L"))


def dicom_mono(
    arr: np.ndarray,
    ds: Any,
    photometric: str,
    meta: dict[str, Any],
    notices: list[str],
) -> np.ndarray:
    """Modality LUT, then VOI LUT / window / used range, then MONOCHROME1 or
    Presentation LUT Shape INVERSE inversion."""
    values = _modality_values(arr, ds)
    pixels = _voi_lut(values, ds, notices)
    if pixels is None:
        pixels = _header_window(values, ds, meta, notices)
    if pixels is None:
        pixels = _used_range(values, notices)
    return _inverted(pixels, ds, photometric, notices)


def window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray | None:
    """DICOM PS3.3 C.11.2.1.2 windowing straight to 0..255 (None if unsupported)."""
    if function == "SIGMOID":
        return map_rows(
            values,
            lambda x: 255.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / width, -700, 700))),
        )
    if function == "LINEAR_EXACT":
        return map_rows(values, lambda x: ((x - center) / width + 0.5) * 255.0)
    if function != "LINEAR" or width < 1:
        return None
    if width == 1:
        return map_rows(values, lambda x: np.where(x > center - 0.5, 255.0, 0.0))
    return map_rows(values, lambda x: ((x - (center - 0.5)) / (width - 1) + 0.5) * 255.0)


def _modality_values(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Stored values through the modality LUT, or rescale slope and intercept."""
    from pydicom.pixels import apply_modality_lut  # heavy; only DICOM uploads load it

    if ds.get("ModalityLUTSequence"):
        return apply_modality_lut(arr, ds)
    slope = dicom_float(ds, "RescaleSlope")
    intercept = dicom_float(ds, "RescaleIntercept")
    slope = 1.0 if slope is None or slope == 0 else slope
    intercept = 0.0 if intercept is None else intercept
    if (slope, intercept) == (1.0, 0.0):
        return arr
    values = arr.astype(np.float32)
    values *= np.float32(slope)
    values += np.float32(intercept)
    return values


def _voi_lut(values: np.ndarray, ds: Any, notices: list[str]) -> np.ndarray | None:
    """The file's VOI LUT applied and stretched to 0..255, or None (absent or unusable)."""
    from pydicom.pixels import apply_voi  # heavy; only DICOM uploads load it

    if not ds.get("VOILUTSequence"):
        return None
    try:
        item = ds.VOILUTSequence[0]
        entries = int(item.LUTDescriptor[0]) or 65536
        first = int(item.LUTDescriptor[1])
        table = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds, 0)
        lo, hi = float(table.min()), float(table.max())
        if hi <= lo:
            return None
        scale = 255.0 / (hi - lo)
        pixels = map_rows(
            values,
            lambda x: (apply_voi(np.rint(x).astype(np.int64), ds, 0) - lo) * scale,
        )
    except (TooSlow, MemoryError):
        raise
    except Exception:  # noqa: BLE001 - fall back to the window or the used range
        return None
    notices.append("The DICOM file's display lookup table (VOI LUT) was applied")
    return pixels


def _header_window(
    values: np.ndarray, ds: Any, meta: dict[str, Any], notices: list[str]
) -> np.ndarray | None:
    """The file's window (centre, width, VOI LUT function) applied, or None."""
    center = dicom_float(ds, "WindowCenter")
    width = dicom_float(ds, "WindowWidth")
    function = dicom_code(ds, "VOILUTFunction") or "LINEAR"
    if center is None or width is None or width <= 0:
        return None
    pixels = window(values, center, width, function)
    if pixels is not None:
        meta["window_center"] = center
        meta["window_width"] = width
        notices.append(
            f"DICOM display window applied (centre {fmt_value(center)}, width {fmt_value(width)})"
        )
    return pixels


def _used_range(values: np.ndarray, notices: list[str]) -> np.ndarray:
    """The values' used range stretched to 0..255 (no window in the file)."""
    pixels, lo, hi, _ = stretch(np.asarray(values))
    if hi > lo:
        notices.append(
            f"No display window in the DICOM file: values {fmt_value(lo)} to "
            f"{fmt_value(hi)} shown black to white"
        )
    return pixels


def _inverted(pixels: np.ndarray, ds: Any, photometric: str, notices: list[str]) -> np.ndarray:
    """Invert MONOCHROME1, or an image whose Presentation LUT Shape is INVERSE."""
    if photometric == "MONOCHROME1":
        notices.append("MONOCHROME1 image inverted so that bone appears white")
        return 255 - pixels
    if dicom_code(ds, "PresentationLUTShape") == "INVERSE":
        # PS3.3 C.11.6: the stored values are to be shown inverted. (With MONOCHROME1,
        # INVERSE is the same instruction as the photometric interpretation, not a second.)
        notices.append("Inverted as the DICOM file asks (Presentation LUT Shape INVERSE)")
        return 255 - pixels
    return pixels
