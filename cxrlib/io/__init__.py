"""Bytes -> 2-D uint8 image: the only place untrusted upload bytes are read.

Start at :func:`cxrlib.io.decode.decode_image`. Modules, from the entry point down:

* ``decode``: :func:`~cxrlib.io.decode.decode_image` and ``read_image``, the lock,
  the contract check.
* ``sniff``: the file's type from its content; known non-image types are named.
* ``pillow``: PNG, JPEG, BMP, TIFF, GIF, WebP.
* ``dicom``: DICOM datasets; ``dicom_codecs``: the first frame whatever its
  compression; ``dicom_display``: modality LUT, VOI LUT / window, inversion;
  ``dicom_fields``: header fields read safely, the metadata allow-list.
* ``header_checks``: what a DICOM header says against a frontal chest X-ray.
* ``decoded``: the :class:`~cxrlib.io.decoded.DecodedImage` result and its notices.
* ``intensity``: values onto 0..255, colourfulness; ``limits``: sizes and their
  refusals; ``budget``: the time budget of one decode.
"""
