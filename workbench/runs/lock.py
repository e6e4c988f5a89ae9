"""One trainer per run, across processes: an OS lock on a file in the run's folder.

The lock is held for as long as a run is queued or training. The kernel drops it when the holding process exits in
any way (Ctrl+C, a crash, kill -9, the out-of-memory killer), so a lock is never stale and a recycled process id
can never pass for a live trainer. Whether a run's trainer is alive is therefore one question: can its lock be
taken right now? Beside the lock, `trainer.json` says who holds it, for the refusal message.

flock (POSIX) and LockFile (Windows) locks belong to an open file, not to a process, so a second open of the same
lock file conflicts even inside the process that holds it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".trainer.lock"
HOLDER_FILE = "trainer.json"

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)  # LockFile locks bytes from the current position: always the first one
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Holder:
    """Who holds a run's lock: a process on a host, since when, doing what ('queued', 'training')."""

    pid: int
    host: str
    since: float
    what: str

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"process {self.pid}{where} since {time.strftime('%H:%M', time.localtime(self.since))}"


class RunLock:
    """The lock of one run folder. `take` returns False when another open file holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self, what: str) -> bool:
        """Take the lock without waiting and say who holds it; True if taken (or already held by this object)."""
        if self._fd is None:
            fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            # A reader asking whether the trainer lives holds the lock for a few microseconds: try a few times.
            for attempt in range(5):
                if _try_lock(fd):
                    break
                time.sleep(0.01 * (attempt + 1))
            else:
                os.close(fd)
                return False
            self._fd = fd
        self.note(what)
        return True

    def note(self, what: str) -> None:
        """Update what the holder is doing (queued → training), keeping when it took the lock."""
        previous = read_holder(self.folder)
        since = previous.since if previous and previous.pid == os.getpid() else time.time()
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": since, "what": what}
        tmp = self.folder / f".{HOLDER_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(holder), encoding="utf-8")
        os.replace(tmp, self.folder / HOLDER_FILE)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            (self.folder / HOLDER_FILE).unlink(missing_ok=True)
            _unlock(fd)
        finally:
            os.close(fd)


def is_free(folder: Path) -> bool:
    """True when nobody holds the run's lock (its trainer, if it had one, is gone). Takes it for a moment."""
    if not (Path(folder) / LOCK_FILE).exists():
        return True
    probe = RunLock(folder)
    try:
        fd = os.open(probe.folder / LOCK_FILE, os.O_RDWR)
    except OSError:
        return True
    try:
        if not _try_lock(fd):
            return False
        _unlock(fd)
        return True
    finally:
        os.close(fd)


def read_holder(folder: Path) -> Holder | None:
    try:
        return Holder(**json.loads((Path(folder) / HOLDER_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
