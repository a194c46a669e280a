"""`python -m cxrlib.predict`."""

from cxrlib.predict.batch import main

if __name__ == "__main__":
    main()
