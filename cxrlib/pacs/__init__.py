"""A PACS over DICOMweb: find chest X-ray studies, fetch and score their images, store results.

:mod:`~cxrlib.pacs.client` talks to any DICOMweb server (QIDO-RS, WADO-RS, STOW-RS);
:mod:`~cxrlib.pacs.results` writes a scored image's results as DICOM (SR and Secondary Capture);
:mod:`~cxrlib.pacs.scoring` scores one instance and sends its results back, once;
:mod:`~cxrlib.pacs.watch` scores instances as they arrive (Orthanc's change feed);
:mod:`~cxrlib.pacs.server` runs a local Orthanc for tests and ``make pacs``;
:mod:`~cxrlib.pacs.demo` makes synthetic demo studies; ``python -m cxrlib.pacs`` runs them.
"""
