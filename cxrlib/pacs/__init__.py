"""PACS: search, fetch and score studies over DICOMweb, and write the results back as DICOM."""
