"""A generate job: what to write where, conflict checks, the decode/write loop and its summary.

`plan_job` is pure Python (no Paddle): the CLI calls it before importing Paddle, so a bad
`--out`, a conflict or a label the model lacks is reported at once and nothing is written.
`run_job` decodes block by block and hands images to a writer (export.py); for PNGs the
encoding runs in a thread pool beside the decoder. Every file appears under its final name
only when complete, so Ctrl-C or a kill leaves complete files, and `--resume` writes the rest.
`--force` writes a PNG folder into a hidden staging folder inside it and swaps that in only once it
is complete, so a run that fails or is stopped leaves the earlier output as it was.
A tar can also go to a stream (`--out -`: stdout), written forward as the blocks come.

Every output bounds what it holds in memory: npz and grid hold the whole job until the end, so
`plan_job` refuses one that would not fit (runtime.memory_budget) and names the formats that stream.
It refuses one that clearly cannot fit on its disk too (a low estimate above the free space).

One output holds one run's pixels: a --resume, or a shard beside other shards, must have the same
settings and decode alike (the same precision; for bf16, whose pixels differ between Paddle
versions, the same Paddle too: fp32's are pinned alike under every supported Paddle,
tests/test_pinned.py). What decodes is known only once the decoder is built, so `run_job` checks
it again before writing. A new single-file output, and a new PNG folder's manifest, take their name
without replacing (atomic.commit): of two runs given one new --out, the second to finish is refused.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import sys
import tarfile
import time
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from mnistgen import atomic, export, sample, sources, untrusted
from mnistgen.checkpoint import Weights
from mnistgen.config import MANIFEST_FILE, MAX_SEED, UNLABELLED, UNLABELLED_DIR, Format, Precision
from mnistgen.errors import MnistgenError
from mnistgen.predictor import decoder_note
from mnistgen.runtime import human_bytes, human_bytes_apart, import_paddle, memory_budget, usable_cpus
from mnistgen.sample import VERIFIER_KEY, Sampler, Sampling, Shard
from mnistgen.version import __version__

METADATA_FILE = "metadata.jsonl"
MANIFEST_STEM = Path(MANIFEST_FILE).stem  # a shard's manifest is mnistgen.shard-...json
IDX_PREFIX = "train"  # train-images-idx3-ubyte.gz: the name MNIST loaders look for
MIN_INDEX_WIDTH = 5  # 00000.png ... 99999.png; wider when a label has more images
MAX_IN_FLIGHT = 8  # decoded blocks queued for the PNG writers: keeps memory flat
Z_DECIMALS = 6
# What an output must record for --resume to add to it (the images it would draw are the same);
# a tar records only the seed, in each image's .json.
RESUME_SETTINGS = (
    "model_sha256",
    "seed",
    "count_per_label",
    "labels",
    "shard",
    "temperature",
    "prior",
    "truncation",
    "sharpen",
    "min_confidence",
    VERIFIER_KEY,  # compared only where recorded: outputs from before it was recorded have none
)
TAR_SETTINGS = ("seed",)
PADDLE_KEY = "paddle_version"  # recorded beside every output: bf16 pixels differ between Paddle versions
ACCEPTANCE_KEY = "acceptance_rate"  # recorded in file outputs when a verified run completes them
# What marks a record as generate's own (Job.attrs, in a manifest, HDF5/npz attributes or a grid's
# PNG text): its model's sha256 beside mnistgen's version and the seed; a user's file that happens
# to have a "seed" has not the rest. A tar records, in each image's .json, exactly TAR_RECORD
# (export.TarWriter).
GENERATE_MARKERS = ("model_sha256", "mnistgen_version", "seed")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
TAR_RECORD = frozenset({"seed", "label", "z"})
SHOWN_CHARS = 60  # a recorded setting quoted in a message: enough to recognise, never a screenful
SHOWN_SHARDS = 4  # shards named in a message
STAGING_NAME = "mnistgen-new"  # --out/.mnistgen-new.PID-TID-HOST.part: a --force run's PNG output until complete
ASIDE_NAME = "mnistgen-old"  # --out/.mnistgen-old.PID-TID-HOST.part: the output it replaces, during the swap


SUFFIX_FORMATS = {
    ".h5": Format.hdf5,
    ".hdf5": Format.hdf5,
    ".npz": Format.npz,
    ".png": Format.grid,
    ".tar": Format.tar,
}
FORMAT_SUFFIXES = {Format.hdf5: ".h5", Format.npz: ".npz", Format.grid: ".png", Format.tar: ".tar"}
FOLDER_FORMATS = (Format.png, Format.idx)
FILE_FORMATS = (Format.hdf5, Format.npz, Format.grid, Format.tar)
STDOUT = "-"  # --out -: a stream on standard output (tar only)
COMPRESSED_SUFFIXES = (".gz", ".tgz", ".bz2", ".xz", ".zst", ".zip")  # --out x.tar.gz --format tar: not compressed
SHARD_FIELD = "{shard}"  # --out synth-{shard}.tar: the shard's index, 00000, 00001, ...
STREAMING_FORMATS = "--format hdf5 or --format tar (to a file, or --out - for a pipe)"


def infer_format(out: Path, fmt: Optional[Format]) -> Format:
    """The format `fmt`, else the one --out's suffix names, else a PNG folder (`check_out_name`
    refuses the names that would make one by mistake)."""
    if fmt is not None:
        return Format(fmt)
    if str(out) == STDOUT:
        return Format.tar
    if _names_folder(out):
        return Format.png
    return SUFFIX_FORMATS.get(Path(out).suffix.lower(), Format.png)


def _names_folder(out) -> bool:
    """An --out given as text ending in "/" (or the system's separator): a folder, whatever its suffix."""
    return os.fspath(out).endswith(("/", os.sep))


def check_out_name(out, fmt: Optional[Format]) -> None:
    """Refuse an --out whose suffix names no format generate writes when no --format is given (x.zip,
    x.tar.gz would silently become folders of PNGs), and a --format that contradicts the suffix.
    Plain names, names ending in "/" (`out` given as text keeps it) and existing folders are folders."""
    text = os.fspath(out)
    path = Path(text)
    suffix = path.suffix.lower()
    named = SUFFIX_FORMATS.get(suffix)
    if text == STDOUT:
        return
    if fmt is not None:
        fmt = Format(fmt)
        if _names_folder(text) and fmt not in FOLDER_FORMATS:
            raise MnistgenError(
                f"--out {text}: a name ending in / is a folder, but --format {fmt.value} writes one file: drop the /, "
                "or use --format png or idx"
            )
        if _names_folder(text):
            return
        if suffix in COMPRESSED_SUFFIXES and fmt in FILE_FORMATS:
            plain = path.with_suffix("").with_suffix(FORMAT_SUFFIXES[fmt]).name  # x.tar.gz -> x.tar
            raise MnistgenError(
                f"--out {path}: generate compresses no {fmt.value} output into {suffix}: name it {plain} and "
                "compress it afterwards (a stream: --out - | gzip)"
            )
        if named is not None and named is not fmt:
            rename = (
                f"name it {path.with_suffix(FORMAT_SUFFIXES[fmt]).name}"
                if fmt in FORMAT_SUFFIXES
                else f"name the folder {path.with_suffix('').name}"
            )
            raise MnistgenError(
                f"--out {path}: its suffix {suffix} means --format {named.value}, not {fmt.value}: drop --format, or "
                f"{rename}"
            )
        return
    if not suffix or named is not None or _names_folder(text) or path.is_dir():
        return
    raise MnistgenError(
        f"--out {path}: generate writes no {suffix} files: name it .h5, .hdf5, .npz, .tar or .png (a grid), or "
        f"pass --format png (or idx) to make a folder named {path.name}"
    )


def label_dir(label: int) -> str:
    return UNLABELLED_DIR if label == UNLABELLED else str(label)


def _label_byte(label: int) -> int:
    return 0 if label == UNLABELLED else label  # file formats store uint8 labels


@dataclass(frozen=True)
class Job:
    """A whole generate request, complete when made by `plan_job` (output conflicts checked,
    targets named) and never changed after: what `run_job` writes and records."""

    weights: Weights
    labels: tuple[int, ...]  # in output order
    count: int  # images per label
    out: Path
    fmt: Format
    seed: int
    sampling: Sampling = Sampling()
    shard: Shard = Shard(0, 1)
    force: bool = False
    resume: bool = False
    scale: int = 1  # grid only
    command: str = ""
    targets: tuple[Path, ...] = ()  # files this job writes (named by plan_job)

    @property
    def sharded(self) -> bool:
        return self.shard.count > 1

    @property
    def streams(self) -> bool:
        """Whether the output is a stream (`--out -`, standard output) rather than files."""
        return str(self.out) == STDOUT

    @property
    def total(self) -> int:
        """Images in the whole job, every shard's."""
        return len(self.labels) * self.count

    @property
    def bounds(self) -> tuple[int, int]:
        return self.shard.bounds(len(self.labels) * self.count)

    @property
    def size(self) -> int:
        start, stop = self.bounds
        return stop - start

    def shard_name(self, name: str) -> str:
        """`name` with this shard's tag before the suffix: metadata.shard-00002-of-00008.jsonl."""
        return _shard_name(name, self.shard)

    @property
    def complete(self) -> bool:
        """A --resume of a file output whose files are all there: nothing is decoded or written (a PNG
        folder's completeness is known only image by image)."""
        return (
            self.resume and self.fmt is not Format.png and bool(self.targets) and all(t.exists() for t in self.targets)
        )

    @property
    def named(self) -> bool:
        """Whether the model names its classes (a card's "classes"): recorded, so a reader keeps the names."""
        return self.weights.config.conditional and bool(self.weights.card.get("classes"))

    def attrs(self, precision: str, paddle: str) -> dict:
        """What is recorded beside the output (file attributes, manifest) and in the summary;
        `precision`: what the decoder runs, `paddle`: the Paddle version that runs it."""
        return {
            "model": self.weights.name,
            "model_sha256": self.weights.sha256,
            "seed": self.seed,
            **self.sampling.attrs(),
            "count_per_label": self.count,
            "labels": [int(label) for label in self.labels],
            **({"classes": list(self.weights.card["classes"])} if self.named else {}),
            "shard": f"{self.shard.index}/{self.shard.count}",
            "precision": precision,
            PADDLE_KEY: paddle,
            "mnistgen_version": __version__,
            "command": self.command,
        }


def _shard_name(name: str, shard: Shard) -> str:
    if shard.count <= 1:
        return name
    return sources.shard_file(name, f".shard-{shard.index:05d}-of-{shard.count:05d}")


def _file_target(out: Path, shard: Shard) -> Path:
    """A single-file output's name for `shard`: its index in place of {shard}, else its tag before the suffix."""
    if SHARD_FIELD in out.name:
        return out.with_name(out.name.replace(SHARD_FIELD, f"{shard.index:05d}"))
    return out.with_name(_shard_name(out.name, shard))


def _record_path(out: Path, fmt: Format, shard: Shard) -> Path:
    """Where an output records its settings: a PNG folder's or IDX pair's manifest, else the file itself."""
    return out / _shard_name(MANIFEST_FILE, shard) if fmt in FOLDER_FORMATS else _file_target(out, shard)


def _read_record(path: Path, fmt: Format) -> Optional[dict]:
    """What the record at `path` (see _record_path) holds, if generate wrote it; None for anything else,
    and for what is not a regular file (a FIFO would block the read)."""
    kind = Format.png if fmt in FOLDER_FORMATS else fmt  # a manifest is read alike for both
    recorded = recorded_settings(path, kind) if path.is_file() else None
    return recorded if _written_by_generate(recorded, tar=kind is Format.tar) else None


def _sibling_records(out: Path, fmt: Format, shard: Shard) -> list[tuple[Path, dict]]:
    """generate's records of the other parts of the output a shard belongs to: the other manifests in
    a PNG folder or IDX directory (a whole run's too: its files have the same names), the other
    shards' files beside a file output."""
    own = _record_path(out, fmt, shard)
    if fmt in FOLDER_FORMATS:
        found = out.glob(MANIFEST_STEM + "*.json") if out.is_dir() else ()
    else:
        name = glob.escape(out.name)
        field = glob.escape(SHARD_FIELD)
        pattern = name.replace(field, "*") if field in name else sources.shard_file(name, sources.SHARD_TAGS)
        found = out.parent.glob(pattern) if out.parent.is_dir() else ()
    records = ((path, _read_record(path, fmt)) for path in sorted(set(found)) if path != own)
    return [(path, record) for path, record in records if record is not None]


def choose_seed(out, fmt: Optional[Format], shard: Shard, resume: bool) -> int:
    """The seed of a run given none: with `resume`, the one the output records (for a shard not yet
    begun, the one the other shards record), so the interrupted command finishes as it started;
    else a random one."""
    if resume and os.fspath(out) != STDOUT:
        out, fmt = Path(out), infer_format(out, fmt)
        own = _read_record(_record_path(out, fmt, shard), fmt)
        records = [own] if own else [record for _, record in _sibling_records(out, fmt, shard)]
        for record in records:
            seed = _as_seed(record.get("seed"))
            if seed is not None:
                return seed
    return secrets.randbelow(MAX_SEED + 1)


def _recorded_number(value, kind: type):
    """A recorded number as `kind` (int or float), or None: HDF5 attributes hold numpy scalars, a
    grid's PNG text holds text, and a stranger's file may hold anything."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = kind(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        return None
    return kind(value)


def _as_seed(value) -> Optional[int]:
    """A recorded seed as an int, when it is one --seed takes."""
    seed = _recorded_number(value, int)
    return seed if seed is not None and 0 <= seed <= MAX_SEED else None


def _index_width(count: int) -> int:
    return max(MIN_INDEX_WIDTH, len(str(count - 1)))


def _png_path(job: Job, label: int, index: int) -> Path:
    return job.out / label_dir(label) / f"{index:0{_index_width(job.count)}d}.png"


def _ours(path: Path, folders: set[str]) -> bool:
    """Whether an entry of an output directory is something `generate` writes: its metadata, its
    manifests, and the label `folders` its manifests name."""
    if (path.name.startswith("metadata") and path.name.endswith(".jsonl")) or path.name.startswith(MANIFEST_STEM):
        return path.is_file()
    return path.is_dir() and path.name in folders


def _generate_records(out: Path) -> list[dict]:
    """The manifests in `out` that generate wrote (recognised by what they record, not by name)."""
    found = (recorded_settings(path, Format.png) for path in sorted(out.glob(MANIFEST_STEM + "*.json")))
    return [record for record in found if _written_by_generate(record)]


def _recorded_folders(records: list[dict]) -> set[str]:
    """The label folders generate's `records` name: all a --force run may replace."""
    labels = [label for record in records for label in _as_list(record.get("labels"))]
    return {label_dir(label) for label in labels if isinstance(label, int) and not isinstance(label, bool)}


def _as_list(value) -> list:
    return value if isinstance(value, list) else []


def _check_replaceable(job: Job) -> None:
    """--force replaces generate's own output only: refuse an `out` with no manifest of generate's,
    or where a label folder this job writes is one no manifest names (the user's own)."""
    records = _generate_records(job.out)
    folders = _recorded_folders(records)
    foreign = [name for name in map(label_dir, job.labels) if (job.out / name).exists() and name not in folders]
    if not any(job.out.glob(MANIFEST_STEM + "*.json")):
        why = f"no {MANIFEST_FILE}"
    elif not records:
        why = f"its {MANIFEST_FILE} was not written by generate"
    elif foreign:
        why = f"{foreign[0]}/ is not named in generate's {MANIFEST_FILE}"
    else:
        return
    raise MnistgenError(
        f"--out {job.out} holds files that generate did not write ({why}): --force replaces only generate's "
        "output; choose another directory"
    )


def _plan_png(job: Job) -> tuple[Path, ...]:
    out = job.out
    if out.exists() and not out.is_dir():
        raise MnistgenError(
            f"--out {out} is a file: give a directory (or a name ending in .h5, .npz or .png for one file)"
        )
    atomic.check_writable_dir(out)
    targets = (out / job.shard_name(METADATA_FILE),)
    if out.is_dir():
        _check_interrupted_swap(out)  # first: its hidden folders hold the output, not leftovers
    if not out.is_dir() or not _entries(out):
        return targets
    if job.resume:
        record = out / job.shard_name(MANIFEST_FILE)
        if record.exists() or not _other_runs_files(job):
            _check_same_job(job, record, out)
        return targets
    if job.force:
        _check_replaceable(job)
    if job.sharded:  # other shards may share the directory: only this shard's files conflict
        clash = targets[0].exists() or any(_owned_existing(job))
        if clash and not job.force:
            raise MnistgenError(
                f"--out {out} already holds shard {job.shard.index}/{job.shard.count}'s files: "
                "pass --resume to finish them or --force to replace them"
            )
        return targets
    if not job.force:
        raise MnistgenError(
            f"--out {out} is not empty: pass --force to replace its images, --resume to finish an interrupted job, "
            "or choose another directory"
        )
    return targets


def _other_runs_files(job: Job) -> bool:
    """Whether a --resume whose manifest `out` lacks finds the output of generate's other runs
    there: for a shard, the other shards' (this one has not begun: it writes into their folder); an
    unsharded --resume into shards' files is refused, naming the --shard that finishes each."""
    shards = {_comparable(record.get("shard")) for record in _generate_records(job.out)}
    recorded = sorted(shards, key=lambda text: [int(p) if p.isdigit() else -1 for p in text.split("/")])
    if job.sharded or not recorded:
        return bool(recorded)
    count = recorded[0].partition("/")[2]
    shown = ", ".join(recorded[:SHOWN_SHARDS]) + (", ..." if len(recorded) > SHOWN_SHARDS else "")
    raise MnistgenError(
        f"--resume: {job.out} holds the files of shards {_shown(shown)} of a run, not of a whole run: pass "
        f"--shard i/{_shown(count)} to finish shard i, or --force to replace them"
    )


def _entries(out: Path) -> list[Path]:
    """What `out` holds, less the temporaries a killed writer left (removed when the job runs)."""
    return [entry for entry in out.iterdir() if not _stale_temporary(entry)]


def _stale_temporary(entry: Path) -> bool:
    return entry.name.startswith(".") and entry.name.endswith(atomic.TEMP_SUFFIX) and not atomic.writer_alive(entry)


def _check_interrupted_swap(out: Path) -> None:
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


def _owned_existing(job: Job):
    """Yield this shard's PNG names that already exist."""
    width = _index_width(job.count)
    existing = {label: _existing_pngs(job, label) for label in job.labels}
    for label, _block, lo, hi in sample.plan(job.labels, job.count, job.shard):
        yield from (n for n in (f"{i:0{width}d}.png" for i in range(lo, hi)) if n in existing[label])


def _existing_pngs(job: Job, label: int) -> set[str]:
    folder = job.out / label_dir(label)
    return {entry.name for entry in os.scandir(folder)} if folder.is_dir() else set()


def _plan_files(job: Job) -> tuple[Path, ...]:
    out = job.out
    if job.fmt is Format.idx:
        if out.exists() and not out.is_dir():
            raise MnistgenError(f"--out {out} is a file: --format idx writes a pair of files into a directory")
        stem = job.shard_name(IDX_PREFIX)
        targets = (out / f"{stem}-images-idx3-ubyte.gz", out / f"{stem}-labels-idx1-ubyte.gz")
    else:
        if out.is_dir():
            raise MnistgenError(
                f"--out {out} is a directory: --format {job.fmt.value} writes one file; give a file name"
            )
        targets = (_file_target(out, job.shard),)
    atomic.check_writable_dir(targets[0].parent)
    existing = [t for t in targets if t.exists()]
    _refuse_special(existing)
    if existing and not (job.force or job.resume):
        raise MnistgenError(f"{existing[0]} already exists: pass --force to replace it, or choose another --out")
    if existing:  # --force replaces, --resume keeps: either only the output of generate itself
        _check_same_job(job, _record_path(out, job.fmt, job.shard), existing[0], same_settings=job.resume)
    if job.fmt is Format.grid:
        columns = job.count
        if job.sharded:
            raise MnistgenError("--format grid makes one preview picture: it cannot be sharded; drop --shard")
        if columns > export.GRID_MAX_COLUMNS and not (
            len(job.labels) == 1
            and columns % export.GRID_WRAP == 0
            and columns // export.GRID_WRAP <= export.GRID_MAX_COLUMNS
        ):
            most, wrap = export.GRID_MAX_COLUMNS, export.GRID_WRAP
            raise MnistgenError(
                f"--format grid draws --count images of each label in a row: use at most {most} (or, for one "
                f"label, a multiple of {wrap} up to {wrap * most}, in rows of {wrap})"
            )
    return targets


def _refuse_special(existing: list[Path]) -> None:
    """Refuse an existing output that is a FIFO, socket or device, unopened: reading it to see what it
    records (--force, --resume) would block."""
    for path in existing:
        kind = untrusted.special_kind(path)
        if kind:
            raise MnistgenError(f"--out {path} is {kind}, not a file generate wrote: choose another --out")


def _check_same_job(job: Job, record: Path, output: Path, same_settings: bool = True) -> None:
    """Refuse to touch `output` unless `record` (the output itself, or its manifest) shows that
    generate wrote it and, with `same_settings` (--resume), with the settings of this job (its
    precision when one was asked for: `run_job` checks the one the decoder runs)."""
    fmt = Format.png if job.fmt in FOLDER_FORMATS else job.fmt
    recorded = recorded_settings(record, fmt)
    if not _written_by_generate(recorded, tar=fmt is Format.tar):
        raise MnistgenError(
            f"{output} was not written by mnistgen generate (no settings recorded in {record.name}): "
            "choose another --out"
        )
    if same_settings:
        _refuse_resume(output, _differences(job, recorded, _asked_precision(job)))


def _refuse_resume(output: Path, differ: list[str]) -> None:
    if differ:
        raise MnistgenError(
            f"--resume: {output} was written with other settings: {', '.join(differ)}; repeat its command to "
            "finish it, or pass --force to replace it"
        )


def _asked_precision(job: Job) -> Optional[str]:
    """The precision asked for, when that is what the decoder will run (auto: known once it is built)."""
    return None if job.sampling.precision == Precision.auto.value else job.sampling.precision


def _differences(
    job: Job, recorded: dict, precision: Optional[str], paddle: Optional[str] = None, keys: Optional[tuple] = None
) -> list[str]:
    """What in `recorded` differs from this job ("seed 8 (now 9)"): the settings that choose the images
    (`keys`: all a record of this format holds), then what decodes them (`_pixel_differences`)."""
    wanted = job.attrs(precision or "", paddle or "")
    keys = keys if keys is not None else TAR_SETTINGS if job.fmt is Format.tar else RESUME_SETTINGS
    differ = [
        k
        for k in keys
        if _comparable(recorded.get(k)) != _comparable(wanted.get(k)) and (k != VERIFIER_KEY or k in recorded)
    ]
    shown = [f"{k} {_shown(recorded.get(k))} (now {_shown(wanted.get(k))})" for k in differ]
    return shown + _pixel_differences(recorded, precision, paddle)


def _pixel_differences(recorded: dict, precision: Optional[str], paddle: Optional[str]) -> list[str]:
    """Why pixels `recorded` would differ from this run's under the same settings: another precision,
    or bf16 under another Paddle version (its pixels differ by up to 4 grey levels between 2.6.2 and
    3.3.1; fp32's are pinned alike under both). None: not known yet; a record without the field (a tar's,
    or one from before it was recorded) is not compared on it."""
    was = recorded.get("precision")
    if precision is None or was is None:
        return []
    if _comparable(was) != precision:
        return [f"precision {_shown(was)} (now {precision})"]
    before = recorded.get(PADDLE_KEY)
    if precision == Precision.bf16.value and paddle and before is not None and _comparable(before) != paddle:
        return [f"Paddle {_shown(before)} (now {paddle}: bf16 pixels differ between Paddle versions)"]
    return []


SEED_HINT = "; without --seed each shard draws its own: pass one --seed to every shard"


def _check_siblings(job: Job, precision: Optional[str], paddle: Optional[str] = None) -> None:
    """A shard writes one part of an output whose other parts other runs wrote (on other nodes,
    perhaps): refuse it unless their records show the same images and pixels (the shard aside).
    With --force the shards of an output are being replaced one by one: the others' records are old."""
    if not job.sharded or job.streams or job.force:
        return
    keys = tuple(k for k in (TAR_SETTINGS if job.fmt is Format.tar else RESUME_SETTINGS) if k != "shard")
    for path, recorded in _sibling_records(job.out, job.fmt, job.shard):
        differ = _differences(job, recorded, precision, paddle, keys)
        if differ:
            raise MnistgenError(
                f"--shard {job.shard.index}/{job.shard.count}: {path} of the same output was written with other "
                f"settings: {', '.join(differ)}; give every shard the same settings (its command is recorded "
                f"there{SEED_HINT if any(d.startswith('seed ') for d in differ) else ''}), pass --force to replace "
                "the output's shards, or write this one elsewhere"
            )


def check_decoding(job: Job, precision: str, paddle: str) -> None:
    """Before anything is written, with what the decoder runs known: a --resume, or a shard beside
    other shards, refused when the pixels recorded there were decoded otherwise (`_pixel_differences`).
    A stream, or an empty shard of a PNG folder, writes nothing there."""
    if not job.targets or job.complete:
        return
    if job.resume:
        recorded = _read_record(_record_path(job.out, job.fmt, job.shard), job.fmt)
        if recorded is not None:
            output = job.out if job.fmt is Format.png else job.targets[0]
            _refuse_resume(output, _pixel_differences(recorded, precision, paddle))
    _check_siblings(job, precision, paddle)


def _written_by_generate(recorded, tar: bool = False) -> bool:
    """Whether `recorded` (what recorded_settings found) is a record generate writes (GENERATE_MARKERS,
    or a tar image's TAR_RECORD)."""
    if not isinstance(recorded, dict):
        return False
    if tar:
        return set(recorded) == TAR_RECORD
    marked = all(key in recorded for key in GENERATE_MARKERS)
    return marked and SHA256_HEX.fullmatch(_comparable(recorded["model_sha256"])) is not None


def _shown(value) -> str:
    """A recorded setting as a message quotes it: cut short, as a file may record anything."""
    text = _comparable(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _comparable(value) -> str:
    """A recorded setting as text, alike whatever stored it: HDF5 attributes hold numpy scalars and
    lists as JSON text, PNG text chunks hold everything as text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value.startswith("["):
        try:
            value = untrusted.loads(value)
        except ValueError:
            return value
    return str(value.tolist() if hasattr(value, "tolist") else value)


def recorded_settings(path: Path, fmt: Format) -> Optional[dict]:
    """The settings an existing output records (HDF5 attributes, the npz's `attrs`, a grid's PNG
    text, the first image's .json in a tar; `fmt` png: a manifest), or None if it records none."""
    try:
        if fmt is Format.hdf5:
            import h5py

            with h5py.File(path, "r") as f:
                return dict(f.attrs)
        if fmt is Format.npz:
            return sources.npz_attrs(path)
        if fmt is Format.grid:
            from PIL import Image

            with Image.open(path) as image:
                return dict(getattr(image, "text", {}))
        if fmt is Format.tar:
            with tarfile.open(path, "r:") as archive:
                first = next((m for m in archive if m.isfile() and m.name.endswith(".json")), None)
                return untrusted.loads(archive.extractfile(first).read(sources.MAX_ATTRS_BYTES)) if first else None
        return sources.read_manifest(path)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, tarfile.TarError):
        return None


def _plan_stream(job: Job) -> tuple[Path, ...]:
    if job.fmt is not Format.tar:
        raise MnistgenError(
            f"--out - streams to standard output as --format tar only; --format {job.fmt.value} needs --out "
            + ("DIR" if job.fmt in (Format.png, Format.idx) else "FILE")
        )
    if job.resume:
        raise MnistgenError("--resume finishes files on disk; a stream is written whole: drop --resume")
    return ()


def held_bytes(job: Job) -> int:
    """Bytes the job's writer holds in memory at once, where that grows with the job (npz, grid)."""
    latent = getattr(job.weights.config, "latent", 0)
    if job.fmt is Format.npz:
        return export.NpzWriter.held_bytes(job.size, latent)
    if job.fmt is Format.grid:
        return export.GridWriter.held_bytes(job.size, len(job.labels), job.scale)
    return 0  # png, hdf5, idx, tar: written block by block


def _check_memory(job: Job) -> None:
    need = held_bytes(job)
    budget, source = memory_budget()
    if need <= budget:
        return
    held, allowed = human_bytes_apart(need, budget)
    what = (
        f"--format npz holds all {job.size:,} images in memory until the end ({held})"
        if job.fmt is Format.npz
        else f"--format grid draws one picture of {job.size:,} images ({held} in memory)"
    )
    fix = (
        f"use {STREAMING_FORMATS}" if job.fmt is Format.npz else f"lower --count or --scale, or use {STREAMING_FORMATS}"
    )
    raise MnistgenError(f"{what}, more than the {allowed} an output may use ({source}): {fix}")


def plan_job(
    weights: Weights,
    labels: list[int],
    count: int,
    out: Path,
    seed: int,
    fmt: Optional[Format] = None,
    sampling: Optional[Sampling] = None,
    shard: Shard = Shard(0, 1),
    force: bool = False,
    resume: bool = False,
    scale: int = 1,
    command: str = "",
) -> Job:
    """The whole job, frozen: the format (from `out`'s suffix when not given; `out` as text keeps a
    final "/", which makes a folder), conflicts with what `out` holds checked, the files it writes
    named; `sampling` None: the model card's, as `mnistgen generate` samples. Pure Python, writes
    nothing. A shard that gets no images is planned too (`empty_note`): a set of shards stays whole."""
    check_out_name(out, fmt)
    sampling = sampling or sample.resolve_sampling(weights)
    job = Job(weights, tuple(labels), count, Path(out), infer_format(out, fmt), seed, sampling, shard, force, resume)
    job = replace(job, scale=scale, command=command)
    if job.shard.count < 1 or not 0 <= job.shard.index < job.shard.count:
        raise MnistgenError(f"--shard {job.shard.index}/{job.shard.count}: use i/n with 0 <= i < n")
    if job.streams:
        targets = _plan_stream(job)
    elif job.size == 0 and job.fmt is Format.png:
        targets = ()  # nothing to add to the folder the other shards share
    else:
        atomic.check_name_fits(job.out, "--out")  # else even asking whether it exists fails
        targets = _plan_png(job) if job.fmt is Format.png else _plan_files(job)
        _check_siblings(job, _asked_precision(job))
    _check_memory(job)
    job = replace(job, targets=targets)
    _check_disk(job)
    return job


def empty_note(job: Job) -> Optional[str]:
    """What a shard that gets no images writes (None: it gets some): nothing into a shared PNG folder,
    else an empty file, so every shard's file is there to merge."""
    if job.size:
        return None
    wrote = "nothing to write" if job.fmt is Format.png else f"writing an empty {job.fmt.value} output"
    return f"--shard {job.shard.index}/{job.shard.count} gets no images out of {job.total}: {wrote}"


def _check_disk(job: Job) -> None:
    """Refuse, before anything is written, a job whose output clearly cannot fit: a low estimate of its
    bytes (export.disk_bytes) above the free space where it goes, or a PNG folder with more files than
    the file system has free inodes (ext4 and XFS count them; btrfs reports none, and is not checked
    so). A stream, and a --resume of a PNG folder (which writes only what is missing), are not checked."""
    if job.streams or not job.targets or (job.resume and job.fmt is Format.png) or job.complete:
        return
    folder = atomic.existing_ancestor(job.targets[0].parent)
    try:
        free = shutil.disk_usage(folder).free
        inodes = os.statvfs(folder) if hasattr(os, "statvfs") else None
    except OSError:
        return  # not known: not refused
    packed = ", or use --format hdf5 (one compressed file)" if job.fmt is Format.png else ""
    fixes = f"free space, choose another --out, lower --count{packed}"
    if job.fmt is Format.png and inodes is not None and inodes.f_files and inodes.f_favail < job.size:
        raise MnistgenError(
            f"--out {job.out}: {job.size:,} PNG files, but the file system of {os.path.abspath(folder)} has room "
            f"for {inodes.f_favail:,} more files (free inodes): {fixes}"
        )
    latent = getattr(job.weights.config, "latent", 0)
    need = export.disk_bytes(job.fmt.value, job.size, latent, job.weights.config.conditional)
    if need > free:
        raise MnistgenError(
            f"--out {job.out}: {job.size:,} images take at least {human_bytes(need)} ({need / job.size:,.0f} bytes "
            f"each) but {os.path.abspath(folder)} has {human_bytes(free)} free: {fixes}"
        )


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files and staging folders a killed writer left (".NAME.PID-TID-HOST.part");
    outputs, and the temporaries of writers still running (another shard) or of another machine's
    (a shard on another node of a shared file system: its process cannot be asked), are never touched."""
    if folder.is_dir():
        for entry in folder.glob(".*" + atomic.TEMP_SUFFIX):
            if not _stale_temporary(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def write_manifest(job: Job, folder: Path, attrs: dict, replace: bool = True) -> Path:
    """A small JSON file beside the output naming the model, its sha256, the seed and the command;
    `replace` False: refused if another run wrote one meanwhile (atomic.commit)."""
    path = folder / job.shard_name(MANIFEST_FILE)
    atomic.write_text(path, json.dumps(attrs, indent=1) + "\n", replace)
    return path


def _prepare_png_dir(job: Job, attrs: dict) -> None:
    """Make the folders; the manifest first, which a new output's takes without replacing: of two runs
    started on one new folder, the second stops here, before any image."""
    out = job.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)  # e.g. the staging folder of a --force run that was killed
    except OSError as exc:
        raise MnistgenError(f"cannot create --out {out}: {exc.strerror}; choose a writable directory") from None
    write_manifest(job, out, attrs, replace=job.force or job.resume)
    try:
        for label in job.labels:
            (out / label_dir(label)).mkdir(exist_ok=True)
            if job.resume or job.force:
                remove_stale_temporaries(out / label_dir(label))
        if job.resume or job.force:
            remove_stale_temporaries(out)
    except OSError as exc:
        raise MnistgenError(f"cannot create --out {out}: {exc.strerror}; choose a writable directory") from None


def _metadata_rows(job: Job, batch, names) -> str:
    label = None if batch.label == UNLABELLED else int(batch.label)
    return "".join(
        json.dumps(
            {
                "file_name": f"{label_dir(batch.label)}/{name}",
                "label": label,
                "seed": job.seed,
                "z": [round(float(v), Z_DECIMALS) for v in z],
            }
        )
        + "\n"
        for name, z in zip(names, batch.z)
    )


def _write_pngs(folder: Path, names: list[str], images, skip: set) -> tuple[int, int]:
    """Write the images not in `skip`; returns (images done, images written)."""
    written = 0
    for name, image in zip(names, images):
        if name not in skip:
            export.write_png(folder / name, image)
            written += 1
    return len(names), written


def _stages(job: Job) -> bool:
    """Whether the job writes into a staging folder and swaps it in at the end: a --force run
    replacing a PNG folder. One shard's files share their folders with the other shards': in place."""
    return job.force and not job.sharded


def _make_staging(out: Path) -> Path:
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


def _swap_in(out: Path, staging: Path) -> None:
    """Replace generate's earlier output in `out` by the complete one in `staging`: the old entries
    are moved aside, the new ones moved in, then the old removed; the user's own files stay. A
    Ctrl-C meanwhile waits for the renames; a failed rename leaves `out` as it was."""
    aside = atomic.temp_name(out / ASIDE_NAME)
    folders = _recorded_folders(_generate_records(out))
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


def _run_png(job: Job, sampler: Sampler, attrs: dict, report: Callable[[int], None]) -> int:
    """Write the job's PNGs; returns how many were written (a --resume skips those already there)."""
    if not job.size:
        return 0  # an empty shard adds nothing to the folder the other shards share
    if not _stages(job):
        return _write_png_dir(job, sampler, attrs, report)
    staging = _make_staging(job.out)
    try:
        fresh = replace(job, out=staging, targets=(staging / job.targets[0].name,), force=False)
        written = _write_png_dir(fresh, sampler, attrs, report)
        _swap_in(job.out, staging)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone after a swap; after a failure, the partial output


def _write_png_dir(job: Job, sampler: Sampler, attrs: dict, report: Callable[[int], None]) -> int:
    _prepare_png_dir(job, attrs)
    existing = (
        {label: _existing_pngs(job, label) for label in job.labels}
        if job.resume
        else {label: set() for label in job.labels}
    )
    width = _index_width(job.count)

    def present(label, lo, hi) -> bool:  # resume: a block whose files all exist is not decoded
        have = existing[label]
        return bool(have) and all(f"{i:0{width}d}.png" in have for i in range(lo, hi))

    pending: deque = deque()
    done = written = 0

    def finished(future) -> None:
        nonlocal done, written
        images, new = future.result()
        done, written = done + images, written + new
        report(done)

    with atomic.atomic_path(job.targets[0]) as meta_tmp, open(meta_tmp, "w", encoding="utf-8") as meta:
        pool = ThreadPoolExecutor(usable_cpus())
        try:
            for label, block, lo, hi in sample.plan(job.labels, job.count, job.shard):
                names = [f"{i:0{width}d}.png" for i in range(lo, hi)]
                batch = sampler.batch(job.seed, label, block, lo, hi, decode=not present(label, lo, hi))
                meta.write(_metadata_rows(job, batch, names))
                if batch.images is None:
                    done += len(names)
                    report(done)
                    continue
                pending.append(
                    pool.submit(_write_pngs, job.out / label_dir(label), names, batch.images, existing[label])
                )
                while len(pending) > MAX_IN_FLIGHT or (pending and pending[0].done()):
                    finished(pending.popleft())
            while pending:
                finished(pending.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # running writes finish (each is atomic)
    return written


def _run_file(
    job: Job, sampler: Sampler, attrs: dict, report: Callable[[int], None], stream: Optional[BinaryIO] = None
) -> int:
    """Write the job's file(s); returns the images written (none when --resume finds them complete).
    A new output takes its name without replacing (only --force replaces); a verified run records its
    acceptance rate in the file."""
    if job.complete:
        report(job.size)  # files appear only when whole
        return 0
    latent, labelled, replacing = sampler.decoder.config.latent, job.weights.config.conditional, job.force
    if job.fmt is Format.hdf5:
        writer = export.Hdf5Writer(job.targets[0], job.size, latent, attrs, labelled, replace=replacing)
    elif job.fmt is Format.npz:
        writer = export.NpzWriter(job.targets[0], job.size, latent, attrs, labelled, replace=replacing)
    elif job.fmt is Format.grid:
        rows = len(job.labels)
        writer = export.GridWriter(job.targets[0], job.size, latent, attrs, rows, job.scale, replace=replacing)
    elif job.fmt is Format.tar:
        width = export.tar_key_width(job.total)  # the whole job's: every shard's keys sort alike
        target = None if job.streams else job.targets[0]
        writer = export.TarWriter(target, job.size, latent, attrs, job.bounds[0], width, stream, replacing)
    else:
        writer = export.IdxWriter(job.targets[0], job.targets[1], job.size, replace=replacing)
    if not job.streams:
        folder = job.targets[0].parent
        folder.mkdir(parents=True, exist_ok=True)
        if job.resume or job.force:
            remove_stale_temporaries(folder)
    start = job.bounds[0]
    with writer:
        for label, block, lo, hi in sample.plan(job.labels, job.count, job.shard):
            batch = sampler.batch(job.seed, label, block, lo, hi)
            position = job.labels.index(label) * job.count + lo - start
            writer.write(batch.images, label if job.fmt is Format.tar else _label_byte(label), batch.z, position)
            report(position + hi - lo)
        acceptance = _measured_acceptance(sampler)
        if acceptance is not None:  # read by the writer as it finishes the file
            attrs[ACCEPTANCE_KEY] = acceptance
    if job.fmt is Format.idx:  # last: a manifest names only files that are there
        write_manifest(job, job.targets[0].parent, attrs)
    return job.size


def _measured_acceptance(sampler: Sampler) -> Optional[float]:
    """The share of candidates the verifier kept in this run; None when it judged none (or there is none)."""
    confidence = sampler.confidence
    return round(confidence.accepted / confidence.tried, 4) if confidence is not None and confidence.tried else None


def _recorded_acceptance(job: Job) -> Optional[float]:
    """The acceptance rate the output records (a verified run that completed a file wrote it there)."""
    if job.streams or not job.targets:
        return None
    recorded = _read_record(_record_path(job.out, job.fmt, job.shard), job.fmt) or {}
    value = _recorded_number(recorded.get(ACCEPTANCE_KEY), float)
    return round(value, 4) if value is not None and 0 <= value <= 1 else None


def run_job(
    job: Job,
    sampler: Sampler,
    on_progress: Optional[Callable[[int, float, float], None]] = None,
    stream: Optional[BinaryIO] = None,
) -> dict:
    """Generate and write this job's images; returns the summary printed as JSON: the recorded
    attributes (one source with the files') plus what the run measured: `count` images in the
    output, `written` by this run and `already_present` (a --resume's), the rate of the written ones
    (null when none were), the verifier's acceptance rate (measured, else what the output records,
    else null). A streaming job (`--out -`) writes into `stream` (default: standard output's binary
    buffer). Refused before anything is written when a --resume or the other shards record pixels
    decoded otherwise (check_decoding)."""
    precision, paddle = sampler.decoder.precision, import_paddle().__version__
    check_decoding(job, precision, paddle)
    started = time.perf_counter()
    attrs = job.attrs(precision, paddle)

    def report(done: int) -> None:  # images done, images/s, share of candidates the filter kept
        if on_progress is not None:
            kept = sampler.confidence.acceptance if sampler.confidence else 1.0
            on_progress(done, done / max(time.perf_counter() - started, 1e-9), kept)

    if job.fmt is Format.png:
        written = _run_png(job, sampler, attrs, report)
    else:
        written = _run_file(job, sampler, attrs, report, (stream or sys.stdout.buffer) if job.streams else None)
    seconds = time.perf_counter() - started
    if job.streams:
        outputs = [STDOUT]
    elif job.fmt is Format.png:
        labels = [str(job.out / label_dir(label)) for label in job.labels] if job.size else []
        outputs = labels + [str(t) for t in job.targets]
    else:
        outputs = [str(t) for t in job.targets]
    measured = {
        "count": job.size,
        "written": written,
        "already_present": job.size - written,
        "format": job.fmt.value,
        "outputs": outputs,
        "seconds": round(seconds, 3),
        "images_per_s": round(written / seconds, 1) if written else None,
        "decoder": sampler.decoder.name,
        **({"decoder_note": note} if (note := decoder_note(sampler.decoder)) else {}),
    }
    if sampler.confidence is not None:
        acceptance = _measured_acceptance(sampler)
        measured[ACCEPTANCE_KEY] = acceptance if acceptance is not None else _recorded_acceptance(job)
    return {**measured, **attrs}
