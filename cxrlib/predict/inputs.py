"""What to score: folders, zip archives and manifest CSVs expanded into one row per file.

Listing reads no image: each :class:`InputRef` says where a file's bytes are, so a
Ray worker reads its own files. A manifest is a CSV with a ``path`` (or ``file``)
column, relative to the CSV's folder. What cannot be listed becomes an error row.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cxrlib.core.errors import ImageError

MAX_ZIP_MEMBERS = 2000
MAX_ZIP_MEMBER_BYTES = 60_000_000
MAX_ZIP_TOTAL_BYTES = 1_000_000_000
ZIP_MAGIC = b"PK\x03\x04"
MANIFEST_COLUMNS = ("path", "file")
# "" because DICOM files from PACS exports and DICOMDIR folders often have no extension.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".gif", ".webp", ""}
)


def is_image_name(relative_path: str) -> bool:
    """Whether a file found in a folder or zip archive is one to score.

    Its name has an image suffix or none, and no part of its path is hidden
    (``.DS_Store``, ``.git/``) or macOS metadata (``__MACOSX/``).
    """
    path = relative_path.replace("\\", "/")
    parts = [p for p in path.split("/") if p]
    if not parts or path.endswith("/") or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class InputRef:
    """One file to score: where its bytes are, not the bytes.

    Attributes:
        name: The name in the output (the path as given, ``archive.zip/member`` for a member).
        path: The file on disk ("" when listing failed).
        member: The member of the zip archive at ``path``, or "".
        error: Why the file cannot be scored (found while listing), or "".
    """

    name: str
    path: str = ""
    member: str = ""
    error: str = ""

    def load(self) -> bytes | ImageError:
        """The file's bytes, or the error that stops them being read (never raises)."""
        if self.error:
            return ImageError(self.error)
        try:
            if not self.member:
                return Path(self.path).read_bytes()
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        except FileNotFoundError:
            return ImageError(f"{self.name}: no such file")
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError) as exc:
            return ImageError(f"{self.name} could not be read ({exc})")


def zip_members(zf: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """The image-like members of an archive; raises ImageError for a zip bomb."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ImageError(f"{name} holds {len(infos):,} files; the limit is {MAX_ZIP_MEMBERS:,}")
    if sum(i.file_size for i in infos) > MAX_ZIP_TOTAL_BYTES:
        raise ImageError(f"{name} unpacks to more than {MAX_ZIP_TOTAL_BYTES // 1_000_000:,} MB")
    return [i for i in infos if is_image_name(i.filename)]


def _open_zip(name: str, source: str | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageError(f"{name} is not a readable zip archive ({exc})") from exc


def is_zip(name: str, head: bytes) -> bool:
    """A zip archive by its name or its first bytes."""
    return name.lower().endswith(".zip") or head[:4] == ZIP_MAGIC


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes; b"" (scored as an error) when it is too large or unreadable."""
    if info.file_size > MAX_ZIP_MEMBER_BYTES:
        return b""
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError):
        return b""


def expand_items(items: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes | ImageError]]:
    """Expands zip archives among in-memory (name, bytes) items; errors are passed on."""
    for name, data in items:
        if not is_zip(name, data):
            yield name, data
            continue
        try:
            zf = _open_zip(name, io.BytesIO(data))
            members = zip_members(zf, name)
        except ImageError as exc:
            yield name, exc
            continue
        for info in members:
            yield f"{name}/{info.filename}", _member(zf, info)


def zip_refs(path: Path) -> list[InputRef]:
    """One ref per image-like member of the archive at ``path`` (or one error ref)."""
    name = str(path)
    try:
        with _open_zip(name, name) as zf:
            members = zip_members(zf, name)
    except ImageError as exc:
        return [InputRef(name, error=str(exc))]
    limit = MAX_ZIP_MEMBER_BYTES // 1_000_000
    return [
        InputRef(f"{name}/{i.filename}", name, i.filename)
        if i.file_size <= MAX_ZIP_MEMBER_BYTES
        else InputRef(f"{name}/{i.filename}", error=f"{name}/{i.filename} is over {limit} MB")
        for i in members
    ]


def file_refs(path: Path) -> list[InputRef]:
    """The refs of one file: itself, or the members of a zip archive."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    return zip_refs(path) if is_zip(path.name, head) else [InputRef(str(path), str(path))]


def manifest_refs(path: Path) -> list[InputRef]:
    """One ref per row of a manifest CSV (its ``path`` or ``file`` column)."""
    try:
        with path.open(newline="") as f:
            table = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [InputRef(str(path), error=f"{path} is not a readable manifest ({exc})")]
    column = next((c for c in MANIFEST_COLUMNS if table and c in table[0]), None)
    if column is None:
        wanted = " or ".join(repr(c) for c in MANIFEST_COLUMNS)
        return [InputRef(str(path), error=f"{path} has no {wanted} column")]
    refs: list[InputRef] = []
    for row in table:
        file = Path(row[column] or "")
        refs.extend(file_refs(file if file.is_absolute() else path.parent / file))
    return refs


def folder_refs(folder: Path) -> list[InputRef]:
    """The refs of every image-like file and zip archive under ``folder``, sorted."""
    refs: list[InputRef] = []
    for f in sorted(folder.rglob("*")):
        inside = f.relative_to(folder).as_posix()
        if f.is_file() and (is_image_name(inside) or f.suffix.lower() == ".zip"):
            refs.extend(file_refs(f))
    return refs


def list_inputs(paths: Iterable[str]) -> list[InputRef]:
    """Files, folders, zip archives and manifest CSVs -> one ref per file to score.

    A path that does not exist gives a ref whose read fails ("no such file").
    """
    refs: list[InputRef] = []
    for p in map(Path, paths):
        if p.is_dir():
            refs.extend(folder_refs(p))
        elif p.suffix.lower() == ".csv":
            refs.extend(manifest_refs(p))
        elif p.exists():
            refs.extend(file_refs(p))
        else:
            refs.append(InputRef(str(p), str(p)))
    return refs
