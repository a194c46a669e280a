"""The processes a test's local Ray started, from /proc (no psutil here): to check none is left."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(name, state, parent pid) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
    return name, rest[0], int(rest[1])


def descendants(root: int | None = None) -> dict[int, str]:
    """Every live process below ``root`` (default: this one): pid -> name."""
    procs = {int(d): _stat(int(d)) for d in os.listdir("/proc") if d.isdigit()}
    found: dict[int, str] = {}
    todo = [os.getpid() if root is None else root]
    while todo:
        parent = todo.pop()
        for pid, st in procs.items():
            if st is not None and st[2] == parent and st[1] != "Z" and pid not in found:
                found[pid] = st[0]
                todo.append(pid)
    return found


def all_gone(pids: list[int], timeout: float = 30.0) -> bool:
    """Whether every one of ``pids`` has exited (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((st := _stat(p)) is None or st[1] == "Z" for p in pids):
            return True
        time.sleep(0.2)
    return False
