"""``python -m cxrlib.pacs COMMAND``: a local Orthanc for ``make pacs``, its demo studies, and
the watcher that scores what arrives (:mod:`cxrlib.pacs.watch`).

    python -m cxrlib.pacs serve [--port 8042] [--dir .pacs]      # foreground; Ctrl-C stops
    python -m cxrlib.pacs demo [--url URL] [--user U] [--password-file F]
    python -m cxrlib.pacs watch [--once] [--state FILE] [--url URL] ...

``serve`` logs in as ``$CXR_PACS_USER`` (default ``cxrlens``) with ``$CXR_PACS_PASSWORD``;
without one it makes a random password, keeps it in ``DIR/password`` (readable by you only,
reused on the next start) and prints that file's path, never the password. It loads the demo
studies when the PACS is empty. ``demo`` stores fresh demo studies in the PACS of
``$CXR_PACS_URL`` (or ``--url``). A command is one entry of :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cxrlib.core.errors import CxrError, PacsError
from cxrlib.core.settings import pacs_credentials
from cxrlib.pacs.client import PacsClient, PacsConfig
from cxrlib.pacs.demo import load_demo
from cxrlib.pacs.server import local_orthanc
from cxrlib.pacs.watch import add_watch_arguments, run_watch

DEFAULT_USER = "cxrlens"


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, its options, and what runs it (returns the exit code)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_connection_arguments(p: argparse.ArgumentParser) -> None:
    """``--url``, ``--user``, ``--password-file``: override ``$CXR_PACS_*`` (no password
    option: a command line is visible to every user of the machine)."""
    p.add_argument("--url", help="DICOMweb root (default: $CXR_PACS_URL)")
    p.add_argument("--user", help="default: $CXR_PACS_USER")
    p.add_argument("--password-file", type=Path, help="default: $CXR_PACS_PASSWORD")


def connection(a: argparse.Namespace) -> PacsConfig:
    """The PACS the options and environment name; a PacsError when there is none."""
    config = PacsConfig.from_env() or PacsConfig("")
    if a.url:
        config = replace(config, url=a.url.rstrip("/"))
    if a.user:
        config = replace(config, user=a.user)
    if a.password_file:
        config = replace(config, password=a.password_file.read_text().strip())
    if not config.url:
        raise PacsError("No PACS given: set CXR_PACS_URL or pass --url.")
    return config


def serve_credentials(folder: Path) -> tuple[str, str, str]:
    """(user, password, where the password is as a shell expression): ``$CXR_PACS_USER`` and
    ``$CXR_PACS_PASSWORD``, else the password kept in ``folder/password`` (made on first use,
    mode 0600)."""
    user, password = pacs_credentials()
    user = user or DEFAULT_USER
    if password:
        return user, password, '"$CXR_PACS_PASSWORD"'
    kept = folder / "password"
    if not kept.exists():
        folder.mkdir(parents=True, exist_ok=True)
        kept.touch(mode=0o600)
        kept.write_text(secrets.token_urlsafe(16) + "\n")
    return user, kept.read_text().strip(), f'"$(cat {kept})"'


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8042, help="HTTP port (loopback only)")
    p.add_argument("--dir", type=Path, default=Path(".pacs"), help="Orthanc's storage folder")
    p.add_argument("--no-demo", action="store_true", help="do not load the demo studies")


def serve(a: argparse.Namespace) -> int:
    """Runs Orthanc in the foreground until Ctrl-C (or SIGTERM)."""
    user, password, where = serve_credentials(a.dir)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops as Ctrl-C does
    try:
        with local_orthanc(a.dir, http_port=a.port, user=user, password=password) as orthanc:
            client = PacsClient(PacsConfig(orthanc.dicomweb_url, user, password))
            if not a.no_demo and not client.search_studies(modalities=None, limit=1):
                print(f"loaded {load_demo(client)} demo studies", file=sys.stderr)
            print(f"Orthanc explorer: {orthanc.url}/app/explorer.html", file=sys.stderr)
            print(f"user {user}, password: {where}; Ctrl-C stops", file=sys.stderr)
            print(
                f"use it: CXR_PACS_URL={orthanc.dicomweb_url} CXR_PACS_USER={user} "
                f"CXR_PACS_PASSWORD={where} make run",
                file=sys.stderr,
            )
            # Ctrl-C in a terminal reaches Orthanc too, which then exits cleanly (0) by itself.
            code = orthanc.process.wait()
            if code:
                print(f"Orthanc failed (exit code {code}); its log: {orthanc.log}", file=sys.stderr)
            return 1 if code else 0
    except KeyboardInterrupt:
        return 0


def demo(a: argparse.Namespace) -> int:
    """Stores fresh demo studies in the PACS."""
    print(f"stored {load_demo(PacsClient(connection(a)))} demo studies", file=sys.stderr)
    return 0


def _watch_arguments(p: argparse.ArgumentParser) -> None:
    add_connection_arguments(p)
    add_watch_arguments(p)


COMMANDS: dict[str, Command] = {
    "serve": Command("a local Orthanc (loopback only) with demo studies", _serve_arguments, serve),
    "demo": Command("store demo studies in the PACS", add_connection_arguments, demo),
    "watch": Command(
        "score each new chest X-ray in the PACS and store the results there",
        _watch_arguments,
        lambda a: run_watch(a, connection(a)),
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Runs one command; a CxrError is printed as its message (exit code 1), not a traceback."""
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.pacs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    a = p.parse_args(argv)
    try:
        return COMMANDS[a.command].run(a)
    except CxrError as e:
        print(e, file=sys.stderr)
        return 1
