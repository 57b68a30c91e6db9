"""The store's files: names, listing in write order, and the rotating writer.

Layout of a store directory::

    traces.jsonl                              active file, appended to
    traces.20250102T030405.123456789Z.jsonl   rotated files, named by rotation time (UTC)
    metrics.jsonl, logs.jsonl, ...            the same per signal

A signal's data in write order is its rotated files sorted by name, then its active file.
Every file holds one signal only, as the OpenTelemetry file-exporter format requires.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SIGNAL_FILES", "RotatingFile", "StoreFile", "list_files"]

SIGNAL_FILES: tuple[str, ...] = ("traces", "metrics", "logs")
_NAME = re.compile(r"^(traces|metrics|logs)(?:\.(\d{8}T\d{6}\.\d{9}Z(?:-\d+)?))?\.jsonl$")


@dataclass(frozen=True)
class StoreFile:
    path: Path
    signal: str
    stamp: str | None  # None for the active file
    size: int

    @property
    def rotated(self) -> bool:
        return self.stamp is not None


def list_files(
    directory: str | os.PathLike[str],
    signal: str | None = None,
    others: list[Path] | None = None,
) -> list[StoreFile]:
    """The store's files (of one signal, or all), oldest data first; active files last.

    Only regular files count: an entry with a store file's name that is a symlink, a FIFO,
    a device or a directory is left out (and appended to ``others`` when given).
    """
    found: list[StoreFile] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or (signal is not None and match.group(1) != signal):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # rotated away or deleted meanwhile
            continue
        if not stat.S_ISREG(st.st_mode):
            if others is not None:
                others.append(Path(entry.path))
            continue
        size = st.st_size
        found.append(StoreFile(Path(entry.path), match.group(1), match.group(2), size))
    # Rotated files by stamp (a UTC timestamp of fixed width), then active files.
    found.sort(key=lambda f: (f.stamp is None, f.stamp or "", SIGNAL_FILES.index(f.signal)))
    return found


def _stamp(now_ns: int) -> str:
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class RotatingFile:
    """Appends whole lines to ``<directory>/<signal>.jsonl``, rotating by size under a cap.

    Guarantees, as long as ``max_total_bytes >= 3 * max_file_bytes`` (one active file per
    signal): an active file never exceeds ``max_file_bytes`` (unless one line alone does),
    and when a file is rotated the oldest rotated files of the directory, whatever their
    signal, are deleted until the whole directory fits ``max_total_bytes``.

    Each line is one ``write`` on an ``O_APPEND`` descriptor, so processes sharing the
    directory (forked workers) interleave whole lines. Before each write the descriptor is
    checked against the path, so a file rotated by another process is followed.
    Methods raise ``OSError``; the exporters turn that into a failed export.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        signal: str,
        *,
        max_file_bytes: int,
        max_total_bytes: int,
    ) -> None:
        self.directory = Path(directory)
        self.signal = signal
        self.path = self.directory / f"{signal}.jsonl"
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._index = _index_of(self.directory)
        _open_files.add(self)

    # -- writing -----------------------------------------------------------------------------

    def write_lines(self, lines: Iterable[bytes]) -> int:
        """Append each line (newline included by the caller); returns bytes written.

        All or nothing, as far as one process can tell: when a write fails (disk full, file
        size limit), what this call appended to the active file is cut off again, so the
        file ends with a whole line and the batch can be retried without being glued onto
        a fragment; then the active file is rotated, so a file that cannot grow (a file size
        limit) does not fail every later write. The ``OSError`` is raised after that.
        """
        written = 0
        with self._lock:
            start: int | None = None  # where this call's bytes begin in the active file
            end = 0  # where they end, as far as written
            fd = -1
            try:
                for line in lines:
                    fd, size = self._current()
                    if size and size + len(line) > self.max_file_bytes:
                        self._rotate()
                        fd, size = self._current()
                        start = None
                    view = memoryview(line)
                    while view:
                        n = os.write(fd, view)
                        # With O_APPEND the offset after a write is the end of what it wrote.
                        end = os.lseek(fd, 0, os.SEEK_CUR)
                        if start is None:
                            start = end - n
                        view = view[n:]
                    written += len(line)
            except OSError:
                if fd >= 0 and self._fd == fd:
                    self._undo(fd, start, end)
                raise
        return written

    def _undo(self, fd: int, start: int | None, end: int) -> None:
        """After a failed write: cut this call's bytes off the active file when nothing was
        appended after them, then rotate the file if it is not empty."""
        with contextlib.suppress(OSError):
            if start is not None and os.fstat(fd).st_size == end:
                os.ftruncate(fd, start)
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_size:
                # Left as it is, the file would end in a fragment (another process wrote
                # after it) or could not grow (a file size limit): start a fresh one.
                self._rotate()

    def _current(self) -> tuple[int, int]:
        """The open descriptor of the active file, and that file's size."""
        if self._fd is not None:
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    return self._fd, st.st_size
            except FileNotFoundError:
                pass
            # Rotated or deleted by someone else: follow the path, and list the directory
            # again at the next rotation, since another process rotates files there.
            self._close()
            self._index.stale()
        self.make_directory()
        with self._index.changing():  # the file may be created
            fd = os.open(self.path, _OPEN_FLAGS, 0o600)
        st = os.fstat(fd)
        self._fd, self._inode = fd, (st.st_dev, st.st_ino)
        return fd, st.st_size

    def make_directory(self) -> None:
        """Create the store directory (0700; its parents follow the umask) if missing."""
        if not self.directory.is_dir():
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.directory.mkdir(mode=0o700)

    def _rotate(self) -> None:
        measured = self._inode
        self._close()
        # Another process may have rotated the file a moment ago: rename only the file that
        # was measured full, never the fresh one that replaced it.
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == measured:
                now = time.time_ns()
                stamp = _stamp(now)
                target = self.directory / f"{self.signal}.{stamp}.jsonl"
                n = 0
                while target.exists():
                    n += 1
                    stamp = f"{_stamp(now)}-{n}"
                    target = self.directory / f"{self.signal}.{stamp}.jsonl"
                with self._index.changing():
                    os.replace(self.path, target)
                    self._index.add(StoreFile(target, self.signal, stamp, st.st_size))
            else:
                self._index.stale()
        self.enforce_cap()

    def enforce_cap(self, *, rescan: bool = False) -> list[Path]:
        """Delete the oldest rotated files until the directory fits the cap; returns them.

        The rotated files are known from an index kept in memory: the directory is listed
        when ``rescan`` is given (a writer starting), or after another process rotated.
        """
        if rescan:
            self._index.stale()
        # Room is kept for a full active file of every signal, so the cap holds until the
        # next rotation whatever is appended meanwhile.
        budget = self.max_total_bytes - len(SIGNAL_FILES) * self.max_file_bytes
        return self._index.trim(budget)

    # -- lifecycle ---------------------------------------------------------------------------

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._inode = self._fd, None, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        with self._lock:
            self._close()

    def _after_fork(self) -> None:
        # A lock held by a parent's thread at fork time would never be released in the child.
        self._lock = threading.Lock()


_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)  # a symlink planted as the active file is not followed
)
_open_files: weakref.WeakSet[RotatingFile] = weakref.WeakSet()


class _Index:
    """The rotated files of one store directory and their sizes, shared by the writers of
    this process, so that a rotation does not list the directory.

    The directory is listed at first, when a writer starts, and when it changed behind this
    process's back: its modification time is checked before and recorded after each change
    made here (a file created, renamed or deleted), and a writer that finds its active file
    replaced knows another process rotated it. Both are a ``stat``, not a listing.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.RLock()
        self.files: dict[Path, StoreFile] | None = None
        self.mtime: int | None = None

    def _mtime(self) -> int | None:
        try:
            return os.stat(self.directory).st_mtime_ns
        except OSError:
            return None

    def stale(self) -> None:
        self.files = None

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Around a change this process makes to the directory."""
        with self.lock:
            if self.files is not None and self._mtime() != self.mtime:
                self.files = None  # someone else changed it since
            try:
                yield
            finally:
                if self.files is not None:
                    self.mtime = self._mtime()

    def add(self, store_file: StoreFile) -> None:
        with self.lock:
            if self.files is not None:
                self.files[store_file.path] = store_file

    def trim(self, budget: int) -> list[Path]:
        """Delete the oldest rotated files until they fit ``budget``; returns them."""
        with self.lock:
            mtime = self._mtime()
            if self.files is None or mtime != self.mtime:
                self.mtime = mtime  # taken first: a change while listing is seen next time
                self.files = {f.path: f for f in list_files(self.directory) if f.rotated}
            rotated = sorted(
                self.files.values(), key=lambda f: (f.stamp or "", SIGNAL_FILES.index(f.signal))
            )
            total = sum(f.size for f in rotated)
            deleted: list[Path] = []
            for f in rotated:  # oldest first
                if total <= budget:
                    break
                with contextlib.suppress(FileNotFoundError):
                    f.path.unlink()
                    deleted.append(f.path)
                del self.files[f.path]
                total -= f.size
            if deleted:
                self.mtime = self._mtime()
            return deleted


_indexes: dict[Path, _Index] = {}
_indexes_lock = threading.Lock()


def _index_of(directory: Path) -> _Index:
    key = Path(os.path.abspath(directory))
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = _Index(key)
        return index


def _reset_locks_in_child() -> None:
    global _indexes_lock
    _indexes_lock = threading.Lock()
    for index in _indexes.values():
        index.lock = threading.RLock()
    for f in list(_open_files):
        f._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)
