"""Compares two folders of page screenshots pixel by pixel and prints one line per page.

The browser test (``pytest -m browser``) leaves a screenshot of every page and tab in
artifacts/screenshots/; copy that folder before a change, run the test again after it, then::

    python -m benchmarks.compare_screens BEFORE_DIR artifacts/screenshots
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

before, after = Path(sys.argv[1]), Path(sys.argv[2])
for a in sorted(before.glob("*.png")):
    b = after / a.name
    if not b.exists():
        print(f"{a.name}: missing after")
        continue
    x, y = np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB"))
    if x.shape != y.shape:
        print(f"{a.name}: size {x.shape[1]}x{x.shape[0]} -> {y.shape[1]}x{y.shape[0]}")
        continue
    diff = np.any(x != y, axis=2)
    print(f"{a.name}: {diff.sum()} of {diff.size} pixels differ")
