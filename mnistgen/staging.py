"""A --force run over a PNG folder, and what killed writers leave: the staging folder, the swap,
stale temporaries.

`--force` writes a PNG folder into a hidden staging folder inside it and swaps that in only once it
is complete, so a run that fails or is stopped leaves the earlier output as it was. The swap is a
few renames that a Ctrl-C waits for; a run killed during them (SIGKILL, a crash) leaves both
halves, which the next run names instead of guessing at. The temporaries a killed writer left are
removed when a job runs; a live writer's (another shard), or another machine's, never are.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from mnistgen import atomic, records
from mnistgen.errors import MnistgenError
from mnistgen.outputs import MANIFEST_STEM, Job

STAGING_NAME = "mnistgen-new"  # --out/.mnistgen-new.PID-TID-HOST.part: a --force run's PNG output until complete
ASIDE_NAME = "mnistgen-old"  # --out/.mnistgen-old.PID-TID-HOST.part: the output it replaces, during the swap


def stages(job: Job) -> bool:
    """Whether the job writes into a staging folder and swaps it in at the end: a --force run
    replacing a PNG folder. One shard's files share their folders with the other shards': in place."""
    return job.force and not job.sharded


def make_staging(out: Path) -> Path:
    """A new hidden folder inside `out` (one file system: the swap is renames) for a --force run's
    output; what a killed run left there is removed first."""
    staging = atomic.temp_name(out / STAGING_NAME)
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        staging.mkdir()
    except OSError as exc:
        raise MnistgenError(f"cannot create --out {out}: {exc.strerror}; choose a writable directory") from None
    return staging


def _manifest_last(entry: Path) -> bool:
    """Sort key: a manifest moves after the files it describes."""
    return entry.name.startswith(MANIFEST_STEM)


def _rename_all(moves: list[tuple[Path, Path]]) -> None:
    """Rename each (source, destination) in order; when one fails, the renames before it are undone
    (every name is as before) and the error raised."""
    done: list[tuple[Path, Path]] = []
    try:
        for source, dest in moves:
            source.rename(dest)
            done.append((source, dest))
    except OSError:
        for source, dest in reversed(done):
            with contextlib.suppress(OSError):  # the first error is what the user must see
                dest.rename(source)
        raise


def _ours(path: Path, folders: set[str]) -> bool:
    """Whether an entry of an output directory is something `generate` writes: its metadata, its
    manifests, and the label `folders` its manifests name."""
    if (path.name.startswith("metadata") and path.name.endswith(".jsonl")) or path.name.startswith(MANIFEST_STEM):
        return path.is_file()
    return path.is_dir() and path.name in folders


def swap_in(out: Path, staging: Path) -> None:
    """Replace generate's earlier output in `out` by the complete one in `staging`: the old entries
    are moved aside, the new ones moved in, then the old removed; the user's own files stay. A
    Ctrl-C meanwhile waits for the renames; a failed rename leaves `out` as it was."""
    aside = atomic.temp_name(out / ASIDE_NAME)
    folders = records.recorded_folders(records.generate_records(out))
    old = sorted((entry for entry in out.iterdir() if _ours(entry, folders)), key=_manifest_last)
    new = sorted(staging.iterdir(), key=_manifest_last)
    moves = [(entry, aside / entry.name) for entry in old] + [(entry, out / entry.name) for entry in new]
    try:
        with atomic.deferred_interrupt(done=f"the new output is in {out}, complete"):
            try:
                aside.mkdir()
                _rename_all(moves)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    aside.rmdir()  # empty again
                raise MnistgenError(
                    f"cannot replace the output in --out {out}: {exc.strerror} ({exc.filename}); it was left as it was"
                ) from None
            with contextlib.suppress(OSError):
                staging.rmdir()  # before the old output goes: an aside folder without its staging one is a done swap's
    finally:
        if not staging.exists():  # swapped: the old output is no longer needed
            shutil.rmtree(aside, ignore_errors=True)


def stale_temporary(entry: Path) -> bool:
    return entry.name.startswith(".") and entry.name.endswith(atomic.TEMP_SUFFIX) and not atomic.writer_alive(entry)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files and staging folders a killed writer left (".NAME.PID-TID-HOST.part");
    outputs, and the temporaries of writers still running (another shard) or of another machine's
    (a shard on another node of a shared file system: its process cannot be asked), are never touched."""
    if folder.is_dir():
        for entry in folder.glob(".*" + atomic.TEMP_SUFFIX):
            if not stale_temporary(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def check_interrupted_swap(out: Path) -> None:
    """Refuse an `out` where a --force run was killed while it swapped its output in (a few renames:
    SIGKILL or a crash, as Ctrl-C waits for them): which entries are old and which new is not known,
    so the folders holding the rest are named rather than guessed at."""
    for aside in out.glob(f".{ASIDE_NAME}.*{atomic.TEMP_SUFFIX}"):
        staging = aside.with_name(aside.name.replace(ASIDE_NAME, STAGING_NAME, 1))
        if staging.exists() and not atomic.writer_alive(aside):  # no staging left: the swap was done
            raise MnistgenError(
                f"--out {out}: a --force run was killed while it replaced the output: the earlier output is "
                f"partly in {aside.name}, the new one partly in {staging.name}; move back the entries you want "
                "and delete both, then run again"
            )
