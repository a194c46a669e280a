"""`python -m cxrlib.evaluate`."""

from cxrlib.evaluate.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
