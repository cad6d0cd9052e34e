"""What an existing generate output records, and whether a new run may write beside or over it.

A record is the output itself (HDF5 attributes, the npz's attrs, a grid's PNG text, a tar image's
.json) or, beside a PNG folder or IDX pair, its manifest; generate's own is recognised by what it
holds (GENERATE_MARKERS, TAR_RECORD), never by its name, and --force replaces only generate's own.
`plan_job` asks here before anything is written; `choose_seed` reads the seed a --resume finishes with.

One output holds one run's pixels: a --resume, or a shard beside other shards, must have the same
settings and decode alike (the same precision; for bf16, whose pixels differ between Paddle
versions, the same Paddle too: fp32's are pinned alike under every supported Paddle,
tests/test_pinned.py). What decodes is known only once the decoder is built, so `run_job` checks
it again before writing (`check_decoding`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import tarfile
import zipfile
from pathlib import Path
from typing import Optional

from mnistgen import sample, sources, untrusted
from mnistgen.config import MANIFEST_FILE, MAX_SEED, Format, Precision
from mnistgen.errors import MnistgenError
from mnistgen.export import TAR_CLASS, TAR_RECORD, TAR_SEED
from mnistgen.outputs import (
    FOLDER_FORMATS,
    MANIFEST_STEM,
    MODEL_PATH_KEY,
    PADDLE_KEY,
    SHARD_FIELD,
    STDOUT,
    SUFFIX_FORMATS,
    Job,
    file_target,
    index_width,
    infer_format,
    label_dir,
    with_shard_tag,
)
from mnistgen.sample import Shard
from mnistgen.sampling import SAMPLING_KEYS, VERIFIER_KEY

# What an output must record for --resume to add to it (the images it would draw are the same):
# the job's keys and every sampling setting (the verifier's sha256 compared only where recorded:
# outputs from before it was recorded have none); a tar records only the seed, in each image's .json.
RESUME_SETTINGS = ("model_sha256", "seed", "count_per_label", "labels", "shard", *SAMPLING_KEYS)
TAR_SETTINGS = (TAR_SEED,)
ACCEPTANCE_KEY = "acceptance_rate"  # recorded in file outputs when a verified run completes them
# What marks a record as generate's own (Job.attrs, in a manifest, HDF5/npz attributes or a grid's
# PNG text): its model's sha256 beside mnistgen's version and the seed; a user's file that happens
# to have a "seed" has not the rest. A tar records, in each image's .json, exactly export.TAR_RECORD and,
# for a model that names its classes, export.TAR_CLASS (export.TarWriter; tars written before it have none).
GENERATE_MARKERS = ("model_sha256", "mnistgen_version", "seed")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SHOWN_CHARS = 60  # a recorded setting quoted in a message: enough to recognise, never a screenful
SHOWN_SHARDS = 4  # shards named in a message
SEED_HINT = "; without --seed each shard draws its own: pass one --seed to every shard"


def record_path(out: Path, fmt: Format, shard: Shard) -> Path:
    """Where an output records its settings: a PNG folder's or IDX pair's manifest, else the file itself."""
    return out / with_shard_tag(MANIFEST_FILE, shard) if fmt in FOLDER_FORMATS else file_target(out, shard)


def _read_record(path: Path, fmt: Format) -> Optional[dict]:
    """What the record at `path` (see record_path) holds, if generate wrote it; None for anything else,
    and for what is not a regular file (a FIFO would block the read)."""
    kind = Format.png if fmt in FOLDER_FORMATS else fmt  # a manifest is read alike for both
    recorded = recorded_settings(path, kind) if path.is_file() else None
    return recorded if _written_by_generate(recorded, tar=kind is Format.tar) else None


def _sibling_records(out: Path, fmt: Format, shard: Shard) -> list[tuple[Path, dict]]:
    """generate's records of the other parts of the output a shard belongs to: the other manifests in
    a PNG folder or IDX directory (a whole run's too: its files have the same names), the other
    shards' files beside a file output."""
    own = record_path(out, fmt, shard)
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
        own = _read_record(record_path(out, fmt, shard), fmt)
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


def generate_records(out: Path) -> list[dict]:
    """The manifests in `out` that generate wrote (recognised by what they record, not by name)."""
    found = (recorded_settings(path, Format.png) for path in sorted(out.glob(MANIFEST_STEM + "*.json")))
    return [record for record in found if _written_by_generate(record)]


def recorded_model(paths: list[Path]) -> Optional[tuple[str, str]]:
    """The model generate recorded for all of `paths` (evaluate --images): its weights file's path and
    sha256 when every path is generate's output (an HDF5 or npz file's own record; the manifests of a
    PNG or IDX folder given as the folder, or beside a file given) and all name one model with its path (outputs
    from before the path was recorded, and tars, record none); else None."""
    models = set()
    for path in map(Path, paths):
        fmt = SUFFIX_FORMATS.get(path.suffix.lower())
        if path.is_dir() or fmt not in (Format.hdf5, Format.npz):
            found = generate_records(path if path.is_dir() else path.parent)
        else:
            found = [record] if (record := _read_record(path, fmt)) else []
        if not found or any(record.get(MODEL_PATH_KEY) is None for record in found):
            return None
        models |= {(_comparable(record[MODEL_PATH_KEY]), _comparable(record["model_sha256"])) for record in found}
    return next(iter(models)) if len(models) == 1 else None


def recorded_folders(records: list[dict]) -> set[str]:
    """The label folders generate's `records` name: all a --force run may replace."""
    labels = [label for record in records for label in _as_list(record.get("labels"))]
    return {label_dir(label) for label in labels if isinstance(label, int) and not isinstance(label, bool)}


def _as_list(value) -> list:
    return value if isinstance(value, list) else []


def check_replaceable(job: Job) -> None:
    """--force replaces generate's own output only: refuse an `out` with no manifest of generate's,
    or where a label folder this job writes is one no manifest names (the user's own)."""
    records = generate_records(job.out)
    folders = recorded_folders(records)
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


def other_runs_files(job: Job) -> bool:
    """Whether a --resume whose manifest `out` lacks finds the output of generate's other runs
    there: for a shard, the other shards' (this one has not begun: it writes into their folder); an
    unsharded --resume into shards' files is refused, naming the --shard that finishes each."""
    shards = {_comparable(record.get("shard")) for record in generate_records(job.out)}
    recorded = sorted(shards, key=lambda text: [int(p) if p.isdigit() else -1 for p in text.split("/")])
    if job.sharded or not recorded:
        return bool(recorded)
    count = recorded[0].partition("/")[2]
    shown = ", ".join(recorded[:SHOWN_SHARDS]) + (", ..." if len(recorded) > SHOWN_SHARDS else "")
    raise MnistgenError(
        f"--resume: {job.out} holds the files of shards {_shown(shown)} of a run, not of a whole run: pass "
        f"--shard i/{_shown(count)} to finish shard i, or --force to replace them"
    )


def owned_existing(job: Job):
    """Yield this shard's PNG names that already exist."""
    width = index_width(job.count)
    existing = {label: existing_pngs(job, label) for label in job.labels}
    for label, _block, lo, hi in sample.plan(job.labels, job.count, job.shard):
        yield from (n for n in (f"{i:0{width}d}.png" for i in range(lo, hi)) if n in existing[label])


def existing_pngs(job: Job, label: int) -> set[str]:
    folder = job.out / label_dir(label)
    return {entry.name for entry in os.scandir(folder)} if folder.is_dir() else set()


def refuse_special(existing: list[Path]) -> None:
    """Refuse an existing output that is a FIFO, socket or device, unopened: reading it to see what it
    records (--force, --resume) would block."""
    for path in existing:
        kind = untrusted.special_kind(path)
        if kind:
            raise MnistgenError(f"--out {path} is {kind}, not a file generate wrote: choose another --out")


def check_same_job(job: Job, record: Path, output: Path, same_settings: bool = True) -> None:
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
        _refuse_resume(output, _differences(job, recorded, asked_precision(job)))


def _refuse_resume(output: Path, differ: list[str]) -> None:
    if differ:
        raise MnistgenError(
            f"--resume: {output} was written with other settings: {', '.join(differ)}; repeat its command to "
            "finish it, or pass --force to replace it"
        )


def asked_precision(job: Job) -> Optional[str]:
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


def check_siblings(job: Job, precision: Optional[str], paddle: Optional[str] = None) -> None:
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
        recorded = _read_record(record_path(job.out, job.fmt, job.shard), job.fmt)
        if recorded is not None:
            output = job.out if job.fmt is Format.png else job.targets[0]
            _refuse_resume(output, _pixel_differences(recorded, precision, paddle))
    check_siblings(job, precision, paddle)


def _written_by_generate(recorded, tar: bool = False) -> bool:
    """Whether `recorded` (what recorded_settings found) is a record generate writes (GENERATE_MARKERS,
    or a tar image's TAR_RECORD, with or without its TAR_CLASS)."""
    if not isinstance(recorded, dict):
        return False
    if tar:
        return set(recorded) - {TAR_CLASS} == TAR_RECORD
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
        if fmt in FOLDER_FORMATS:
            return sources.read_manifest(path)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, tarfile.TarError):
        return None
    raise ValueError(f"recorded_settings does not know --format {fmt.value}")  # a new format: say where it records


def recorded_acceptance(job: Job) -> Optional[float]:
    """The acceptance rate the output records (a verified run that completed a file wrote it there)."""
    if job.streams or not job.targets:
        return None
    recorded = _read_record(record_path(job.out, job.fmt, job.shard), job.fmt) or {}
    value = _recorded_number(recorded.get(ACCEPTANCE_KEY), float)
    return round(value, 4) if value is not None and 0 <= value <= 1 else None
