"""`python -m cxrlib.pacs`."""

from cxrlib.pacs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
