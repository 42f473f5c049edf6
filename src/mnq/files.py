"""Reading the files a user points mnq at: regular files only, and never more than a
stated cap. `/dev/zero`, a FIFO, or a 20 GiB sparse file is then a one-line error
within milliseconds, not an endless read, a hang, or the OOM killer."""
from __future__ import annotations

import mmap
import os
import stat
from typing import Union

MAX_MODEL_BYTES = 512 << 20  # uint8 MobileNets are 0.5-4.3 MB; even float ones stay under 20 MB
MAX_LABELS_BYTES = 16 << 20  # a labels file, beside a model or inside its metadata zip

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def size_text(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def read_capped(path: Union[str, os.PathLike], cap: int, what: str, error: type = ValueError) -> bytes:
    """The whole file, if it is a regular file of at most `cap` bytes; else `error`
    naming the file, what it is or its size, and the cap. `what` reads like
    "a labels file". A missing or unreadable file raises the usual OSError."""
    with _open_regular(path, cap, what, error) as f:
        return _read_at_most(f, path, cap, what, error)


def map_capped(path: Union[str, os.PathLike], cap: int, what: str, error: type = ValueError):
    """Like read_capped, but a read-only mmap of the file where the OS allows it: the
    bytes stay in the page cache instead of being copied into this process. The
    mapping is released when the returned object is; parse it, keep copies, drop it.
    (A file truncated by another process while mapped faults on access, as for any
    mmap-ing reader: replace model files by rename, not by rewriting them in place.)"""
    with _open_regular(path, cap, what, error) as f:
        if os.fstat(f.fileno()).st_size:
            try:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # a file system without mmap: read it instead
                pass
        return _read_at_most(f, path, cap, what, error)


def _open_regular(path, cap, what, error):
    st = os.stat(path)  # before opening: never open a device or a FIFO at all
    _check(path, st, cap, what, error)
    # O_NONBLOCK: if a FIFO replaced the file since the stat, the open must not wait for a writer
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _check(path, os.fstat(fd), cap, what, error)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check(path, st, cap, what, error):
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
        raise error(f"{os.fspath(path)}: {kind}, not a regular file; {what} is read only from a regular file")
    if st.st_size > cap:
        raise error(f"{os.fspath(path)}: {size_text(st.st_size)}, more than the {size_text(cap)} allowed for {what}")


def _read_at_most(f, path, cap, what, error) -> bytes:
    # reads sized by the file, not by the cap (a read(cap) reserves the whole cap), and
    # bounded for a file that grew since the stat or reports size 0 (/proc)
    expected = os.fstat(f.fileno()).st_size
    parts, total = [], 0
    while total <= cap:
        part = f.read(min(cap + 1 - total, max(expected + 1 - total, 1 << 16)))
        if not part:
            return b"".join(parts)
        parts.append(part)
        total += len(part)
    raise error(f"{os.fspath(path)}: more than the {size_text(cap)} allowed for {what}")
