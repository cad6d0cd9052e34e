"""Atomic file output: write to a hidden temporary name in the same directory, then rename.

A reader (or a resumed job) therefore sees either the old file, or the complete new one,
never a half-written file - whether the writer finishes, fails, or is killed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".part"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(dest: Path):
    """Yield a temporary path beside `dest`; on success it replaces `dest`, on failure it is removed."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)  # mkstemp makes 0600; outputs should follow the umask
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(dest: Path, payload: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(payload)


def write_text(dest: Path, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))
