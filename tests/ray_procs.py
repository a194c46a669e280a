"""The processes a test's local Ray started (psutil): to check none is left."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psutil

T = TypeVar("T")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _alive_pid(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def descendants(root: int | None = None) -> dict[int, str]:
    """Every live process below ``root`` (default: this one): pid -> name."""
    found = {}
    for p in psutil.Process(root).children(recursive=True):
        try:
            if _alive(p):
                found[p.pid] = p.name()
        except psutil.NoSuchProcess:
            pass
    return found


def started_by(action: Callable[[], T]) -> tuple[T, dict[int, str]]:
    """``action()``'s result and the processes below this one that it started (pid -> name):
    not those already running, such as a session's Orthanc."""
    before = descendants()
    result = action()
    return result, {pid: name for pid, name in descendants().items() if pid not in before}


def all_gone(pids: list[int], timeout: float = 30.0) -> bool:
    """Whether every one of ``pids`` has exited (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive_pid(p) for p in pids):
            return True
        time.sleep(0.2)
    return False
