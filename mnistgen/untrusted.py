"""Reading what a stranger may have made: only regular files, and JSON that fails as ValueError.

A FIFO, socket or device named like a data file would block its reader, or never end, so readers
check that a path is a regular file (or a folder) before they open it. JSON from a file is parsed
so that every way it can be damaged - malformed text, an integer of over 4,300 digits, nesting
deep enough to exhaust the stack (RecursionError) - is one ValueError for the caller's message.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Union

from mnistgen.errors import MnistgenError

KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}


def special_kind(path: Union[str, Path]) -> str:
    """'a FIFO', 'a socket' or 'a device' when `path` (symlinks followed) is one; else '' (a
    regular file, a folder, or nothing there)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, unreadable, or a name the OS cannot take
        return ""
    return KINDS.get(stat.S_IFMT(mode), "")


def check_not_special(path: Union[str, Path], option: str, fix: str = "pass a regular file") -> None:
    """Refuse a `path` that is a FIFO, socket or device: reading one blocks, or never ends."""
    kind = special_kind(path)
    if kind:
        raise MnistgenError(f"{option} {path} is {kind}, not a file: {fix}")


def loads(data: Union[str, bytes]):
    """`json.loads`, with nesting too deep for Python's stack raised as a ValueError, as any other
    damage is (JSONDecodeError, an over-long integer and bad UTF-8 are ValueErrors already)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
