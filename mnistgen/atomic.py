"""Atomic file output: write to a hidden temporary name in the same directory, then rename.

A reader (or a resumed job) therefore sees either the old file or the complete new one,
never a half-written file - whether the writer finishes, fails, or is killed. The temporary
name carries the process and thread id, so concurrent writers (threads, shard jobs sharing a
directory) never collide, and it is created with the umask's permissions like any output.
A destination whose temporary name would pass the file system's name limit gets a shortened
one (a prefix and a hash of the name), so any name that fits can be written.

A new output that another run may write at the same moment (two jobs given one `--out`) is
committed without replacing (`replace=False`): a hard link to the final name, which fails when
the name exists, so the run that finishes second is refused instead of overwriting the first.
Where the file system has no hard links the name is checked and then renamed: a narrow race
remains there.

The checks a command runs before any work also live here: an output's directory exists and is
writable, its name fits, and it replaces an existing file only when asked (`--force`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Optional

from mnistgen.errors import MnistgenError

TEMP_SUFFIX = ".part"
NAME_MAX_DEFAULT = 255  # bytes in one file name: Linux, macOS and Windows file systems
SHORT_NAME = 128  # temporary names up to this many bytes fit any common file system: no pathconf call
HOST_TAG_CHARS = 8  # hex digits of the host name's hash in a temporary name
TEMP_HASH_CHARS = 12  # hex digits of the whole name's hash in a shortened temporary name
TEMP_HASH_MARK = "~"  # between the kept prefix and the hash: .PREFIX~HASH.PID-TID-HOST.part
# What os.link fails with where a file system has no hard links (FAT, some FUSE and SMB mounts)
NO_HARD_LINKS = frozenset(
    code for code in (errno.EPERM, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", None), errno.ENOSYS) if code
)


FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a write that met no room: the file it filled is named


def name_max(directory: str) -> int:
    """The longest file name, in bytes, that `directory`'s file system allows."""
    try:
        limit = os.pathconf(directory or ".", "PC_NAME_MAX")
    except (OSError, ValueError):  # a missing directory, or no such limit on this system
        return NAME_MAX_DEFAULT
    return limit if limit > 0 else NAME_MAX_DEFAULT


@functools.lru_cache(maxsize=1)
def host_tag() -> str:
    """This machine, as a temporary name carries it: a short hash of its host name (shards of one
    job on several nodes of a shared file system write into one folder; a process id means
    something on its own machine only)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:HOST_TAG_CHARS]


def _temp_tail(head: str, tail: str) -> str:
    """The temporary name for file `tail` in directory `head`: ".TAIL.PID-TID-HOST.part", or, when that
    would pass the file system's limit, ".PREFIX~HASH.PID-TID-HOST.part" (HASH: of the whole name)."""
    tag = f".{os.getpid()}-{threading.get_ident()}-{host_tag()}{TEMP_SUFFIX}"
    name = f".{tail}{tag}"
    size = len(os.fsencode(name))
    if size <= SHORT_NAME or size <= name_max(head):
        return name
    digest = hashlib.sha256(os.fsencode(tail)).hexdigest()[:TEMP_HASH_CHARS]
    budget = name_max(head) - len(os.fsencode(f".{TEMP_HASH_MARK}{digest}{tag}"))
    prefix = tail[: max(budget, 0)]
    while len(os.fsencode(prefix)) > budget:  # a character may take several bytes
        prefix = prefix[:-1]
    return f".{prefix}{TEMP_HASH_MARK}{digest}{tag}"


def temp_name(dest: Path) -> Path:
    return dest.with_name(_temp_tail(os.fspath(dest.parent), dest.name))


def _discard(tmp) -> None:
    """Remove a temporary file after a failure; one never made (or on a read-only file system, where
    removing it fails too) is no second error: the first one is what the user must see."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _blame_destination(exc: OSError, tmp, dest) -> None:
    """A failure on the temporary file is reported on the destination the user named: a missing
    directory as such (ENOENT there is no read error), anything else with `dest` as the file name. A
    failed write names no file (os.write, a file object's flush): a full disk, a file-size limit or a
    quota (FULL_ERRNOS) is told on the file it filled; any other unnamed error (an encoder's, Paddle's)
    stays unnamed, as it need not be about the file."""
    if exc.filename is None and exc.errno in FULL_ERRNOS:
        exc.filename = os.fspath(tmp)
    if exc.filename is None:
        return
    if os.fspath(exc.filename) != os.fspath(tmp):
        return
    folder = os.path.dirname(os.fspath(dest)) or "."
    if exc.errno == errno.ENOENT and not os.path.isdir(folder):
        raise MnistgenError(
            f"cannot write {os.fspath(dest)}: directory {folder} does not exist: create it, or choose another path"
        ) from None
    exc.filename = os.fspath(dest)


def writer_alive(temp: Path) -> bool:
    """Whether the process named in a temporary file's name (".NAME.PID-TID-HOST.part") may still be
    writing it: it runs here, or the name is another machine's (whose processes cannot be asked; its
    temporaries are left alone). A name without a host (written before hosts were named) is this one's."""
    try:
        pid, *rest = temp.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[1].split("-")
        if len(rest) > 1 and rest[1] != host_tag():
            return True
        os.kill(int(pid), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _clobbered(dest) -> MnistgenError:
    return MnistgenError(
        f"{os.fspath(dest)} was written by another run meanwhile: it was kept and this run's output removed; "
        "choose another --out, or pass --force to replace it"
    )


def commit(tmp, dest, replace: bool = True) -> None:
    """Give the complete temporary file `tmp` its final name `dest`: replacing what is there, or
    (`replace` False) refusing when `dest` exists, even when it appeared a moment ago."""
    if replace:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest exists: atomic, unlike a check followed by a rename
    except FileExistsError:
        raise _clobbered(dest) from None
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(dest):  # no hard links here: checked, then renamed (a narrow race remains)
            raise _clobbered(dest) from None
        os.replace(tmp, dest)
        return
    _discard(tmp)


@contextlib.contextmanager
def atomic_path(dest: Path, replace: bool = True):
    """Yield a temporary path beside `dest`; on success it becomes `dest` (see `commit`), on failure it
    is removed."""
    dest = Path(dest)
    tmp = temp_name(dest)
    try:
        yield tmp
        commit(tmp, dest, replace)
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError):
            _blame_destination(exc, tmp, dest)
        raise


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C or SIGTERM held until a step completed: `note` says what is on disk now."""

    def __init__(self, note: str, signum: int = signal.SIGINT):
        super().__init__(note)
        self.note = note
        self.exit_code = 128 + signum  # the shell's code for the signal: 130, or 143 for SIGTERM


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what stops a command: Ctrl-C, and timeout/Slurm/docker stop


@contextlib.contextmanager
def deferred_interrupt(done: Optional[str] = None):
    """Hold a Ctrl-C or SIGTERM until the block ends, then deliver it: for a few renames that must
    all happen. `done` says what is on disk once they have (the Interrupted raised carries it, for the
    message; the earlier state's message would be wrong). Python runs signal handlers in the main
    thread only; elsewhere this holds nothing, and a handler set outside Python is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in HELD_SIGNALS}
    held = [signum for signum, handler in previous.items() if handler is not None]
    caught = []
    for signum in held:
        signal.signal(signum, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for signum in held:
            signal.signal(signum, previous[signum])
    if not caught:
        return
    first = caught[0]
    if done is not None and callable(previous[first]):
        raise Interrupted(done, first)  # what a handler that stops would do, with what is on disk now
    signal.raise_signal(first)  # now handled as before: ignored, the default, or the handler's own


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def write_bytes(dest: Path, payload: bytes, replace: bool = True) -> None:
    """The fast path for many small files (PNGs): one open, one write, one rename, on plain
    strings (pathlib's overhead halved the rate at thousands of files per second). `replace`: as
    `commit`'s."""
    head, tail = os.path.split(os.fspath(dest))
    tmp = os.path.join(head, _temp_tail(head, tail))
    try:
        fd = os.open(tmp, _CREATE, 0o666)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        commit(tmp, dest, replace)
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError):
            _blame_destination(exc, tmp, dest)
        raise


def write_text(dest: Path, text: str, replace: bool = True) -> None:
    write_bytes(dest, text.encode("utf-8"), replace)


# -- checks before any work ---------------------------------------------------------------------


def existing_ancestor(path: Path) -> Path:
    """`path`, or its nearest parent that exists."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_name_fits(dest: Path, option: str) -> None:
    """`dest`'s last name is no longer than its file system allows (else even asking whether it exists fails)."""
    limit = name_max(os.fspath(Path(dest).parent))
    if len(os.fsencode(Path(dest).name)) > limit:
        raise MnistgenError(
            f"{option} {dest}: the name is longer than the {limit} bytes this file system allows: choose a shorter one"
        )


def check_writable_dir(directory: Path, option: str = "--out") -> None:
    """A directory that is made when missing: its nearest existing ancestor must be a writable directory."""
    probe = existing_ancestor(directory)
    if not probe.is_dir():
        raise MnistgenError(f"{option} {directory}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MnistgenError(f"{option} {directory} is not writable: choose a directory you can write to")


def check_new_file(dest: Path, option: str, force: bool = False) -> None:
    """An output file, before any work: its directory exists and is writable, its name fits, and
    it replaces an existing file only with `force`."""
    dest = Path(dest)
    folder = dest.parent
    check_name_fits(dest, option)
    if dest.is_dir():
        raise MnistgenError(f"{option} {dest} is a directory: give a file name")
    probe = existing_ancestor(folder)
    if not probe.is_dir():
        raise MnistgenError(f"{option} {dest}: {probe} is a file, not a directory")
    if probe != folder:
        raise MnistgenError(
            f"{option} {dest}: directory {folder} does not exist: create it, or choose another {option}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MnistgenError(f"{option} {dest}: directory {folder} is not writable: choose a directory you can write to")
    if (dest.exists() or dest.is_symlink()) and not force:
        raise MnistgenError(f"{dest} already exists: pass --force to replace it, or choose another {option}")


def check_apart(outputs: dict[str, Optional[Path]], inputs) -> None:
    """No output may be one of the inputs, or inside an input folder: --force would replace the data
    being read, and a picture written into a folder of pictures would be read with them next time."""
    read = [(Path(p), Path(p).resolve()) for p in inputs]
    for option, dest in outputs.items():
        if dest is None:
            continue
        where = Path(dest).resolve()
        for given, source in read:
            if where == source:
                raise MnistgenError(f"{option} {dest} is one of the inputs: write it elsewhere")
            if source in where.parents:
                raise MnistgenError(f"{option} {dest} is inside {given}, which is being read: write it elsewhere")
            if where in source.parents:  # a frames folder that --force would empty
                raise MnistgenError(f"{option} {dest} holds {given}, which is being read: write it elsewhere")


def check_new_files(outputs: dict[str, Optional[Path]], force: bool = False) -> None:
    """`check_new_file` for each option given (None: not asked for); two options may not name one file."""
    seen: dict[str, str] = {}
    for option, dest in outputs.items():
        if dest is None:
            continue
        check_new_file(dest, option, force)
        same = seen.setdefault(os.path.abspath(dest), option)
        if same != option:
            raise MnistgenError(f"{same} and {option} both name {dest}: give each its own file")
