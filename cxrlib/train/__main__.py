"""`python -m cxrlib.train`."""

from cxrlib.train.classifier import main

if __name__ == "__main__":
    main()
