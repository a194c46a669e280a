"""The one content hash: an upload's cache key and a file's version."""

from __future__ import annotations

import hashlib

from cxrlib.core.hashing import sha256_bytes, sha256_file


def test_sha256_bytes_is_the_uploads_cache_key() -> None:
    data = b"\x89PNG fake bytes"
    assert sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) != sha256_bytes(data + b"!")


def test_sha256_file_hashes_the_file(tmp_path) -> None:
    data = bytes(range(256)) * 1000
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == sha256_bytes(data)
