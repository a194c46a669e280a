"""A JPEG Lossless encoder for test fixtures (nothing installed here can write one).

Real chest X-ray DICOMs often come as JPEG Lossless (ITU T.81 process 14); the
decoders are pydicom's plugins, and these streams check them against the source.
"""

from __future__ import annotations

import struct

import numpy as np


def lossless_jpeg(arr: np.ndarray, precision: int) -> bytes:
    """A JPEG Lossless (ITU T.81 process 14, first-order prediction) stream of a 2-D array.

    Nothing here can encode it, and real chest X-ray DICOMs often come this way, so the
    tests write it: one component, predictor 1, one Huffman table giving each difference
    category 0-16 a 5-bit code.
    """
    h, w = arr.shape
    x = arr.astype(np.int64)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << (precision - 1)
    pred[0, 1:] = x[0, :-1]  # first line: the left neighbour
    pred[1:, 0] = x[:-1, 0]  # first column: the sample above
    pred[1:, 1:] = x[1:, :-1]  # predictor 1: the left neighbour
    bits, nbits = 0, 0
    for d in (x - pred).ravel().tolist():
        cat = abs(d).bit_length()
        extra = d if d >= 0 else d + (1 << cat) - 1
        bits = (bits << (5 + cat)) | (cat << cat) | (extra & ((1 << cat) - 1))
        nbits += 5 + cat
    pad = -nbits % 8
    scan = (((bits << pad) | ((1 << pad) - 1)).to_bytes((nbits + pad) // 8, "big")).replace(
        b"\xff", b"\xff\x00"
    )
    sof = struct.pack(">HBHHBBBB", 11, precision, h, w, 1, 1, 0x11, 0)
    dht = struct.pack(">HB", 2 + 1 + 16 + 17, 0x00) + bytes([0, 0, 0, 0, 17] + [0] * 11)
    sos = struct.pack(">HBBBBBB", 8, 1, 1, 0x00, 1, 0, 0)
    return (
        b"\xff\xd8\xff\xc3" + sof + b"\xff\xc4" + dht + bytes(range(17))
        + b"\xff\xda" + sos + scan + b"\xff\xd9"
    )  # fmt: skip
