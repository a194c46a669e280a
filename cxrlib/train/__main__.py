"""``python -m cxrlib.train``: trains the classifier (:mod:`cxrlib.train.cli`)."""

from cxrlib.train.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
