"""Bytes -> 2-D uint8 image (:func:`cxrlib.io.decode.decode_image`): the only place untrusted
upload bytes are read."""
