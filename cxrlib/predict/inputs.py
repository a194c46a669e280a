"""What to score: folders, zip archives and manifest CSVs (a ``path`` or ``file`` column,
relative to the CSV) expanded into one :class:`InputRef` per file; listing reads no image."""

from __future__ import annotations

import contextlib
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
READ_ERRORS = (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError)
MANIFEST_COLUMNS = ("path", "file")
# "" because DICOM files from PACS exports and DICOMDIR folders often have no extension.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".gif", ".webp", ""}
)


def is_image_name(relative_path: str) -> bool:
    """Whether a file in a folder or zip archive is one to score: an image suffix or none, and
    no hidden part (``.git/``) or macOS metadata (``__MACOSX/``) in its path."""
    path = relative_path.replace("\\", "/")
    parts = [p for p in path.split("/") if p]
    if not parts or path.endswith("/") or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class InputRef:
    """One file to score: its name in the output, where its bytes are (a file, or a member of
    the zip archive at ``path``), not the bytes; or why listing failed (``error``)."""

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
        except READ_ERRORS as exc:
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
            member = b""  # too large or unreadable: scored as an error
            if info.file_size <= MAX_ZIP_MEMBER_BYTES:
                with contextlib.suppress(*READ_ERRORS):
                    member = zf.read(info)
            yield f"{name}/{info.filename}", member


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
    head = b""
    with contextlib.suppress(OSError), path.open("rb") as f:
        head = f.read(4)
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
        return [InputRef(str(path), error=f"{path} has no 'path' or 'file' column")]
    # An absolute path stays itself: ``parent / "/abs"`` is ``/abs``.
    return [ref for row in table for ref in file_refs(path.parent / (row[column] or ""))]


def folder_refs(folder: Path) -> list[InputRef]:
    """The refs of every image-like file and zip archive under ``folder``, sorted."""
    refs: list[InputRef] = []
    for f in sorted(folder.rglob("*")):
        inside = f.relative_to(folder).as_posix()
        if f.is_file() and (is_image_name(inside) or f.suffix.lower() == ".zip"):
            refs.extend(file_refs(f))
    return refs


def list_inputs(paths: Iterable[str]) -> list[InputRef]:
    """One ref per file to score; a path that does not exist gives one that fails to load."""
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
