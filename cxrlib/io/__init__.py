"""Bytes -> 2-D uint8 image: the only place untrusted upload bytes are read.

Start at :func:`cxrlib.io.decode.decode_image`; :func:`cxrlib.io.header_checks.header_concerns`
reads what a DICOM header says against a frontal chest X-ray.
"""
