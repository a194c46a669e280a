"""A PACS over DICOMweb: find chest X-ray studies, fetch their images, store results.

:mod:`~cxrlib.pacs.client` talks to any DICOMweb server (QIDO-RS, WADO-RS, STOW-RS);
:mod:`~cxrlib.pacs.server` runs a local Orthanc for tests and ``make pacs``;
:mod:`~cxrlib.pacs.demo` makes synthetic demo studies; ``python -m cxrlib.pacs`` runs them.
"""
