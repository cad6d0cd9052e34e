"""A generate job: planning it (what to write where, checked) and running it (the decode/write
loop and its summary).

`plan_job` is pure Python (no Paddle): the CLI calls it before importing Paddle, so a bad
`--out`, a conflict or a label the model lacks is reported at once and nothing is written. What
--out names, and the Job, are outputs.py's; whether an existing output lets this run write beside
or over it, records.py's.
`run_job` decodes block by block and hands images to a writer (export.py); for PNGs the
encoding runs in a thread pool beside the decoder. Every file appears under its final name
only when complete, so Ctrl-C or a kill leaves complete files, and `--resume` writes the rest.
`--force` over a PNG folder writes beside it and swaps the new output in once complete (staging.py).
A tar can also go to a stream (`--out -`: stdout), written forward as the blocks come.

Every output bounds what it holds in memory: npz and grid hold the whole job until the end, so
`plan_job` refuses one that would not fit (runtime.memory_budget) and names the formats that stream.
It refuses one that clearly cannot fit on its disk too (a low estimate above the free space).

A new single-file output, and a new PNG folder's manifest, take their name without replacing
(atomic.commit): of two runs given one new --out, the second to finish is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from mnistgen import atomic, export, records, sample, staging
from mnistgen.checkpoint import Weights
from mnistgen.config import MANIFEST_FILE, UNLABELLED, Format
from mnistgen.errors import MnistgenError
from mnistgen.outputs import (
    FILE_SUFFIXES,
    FOLDER_FORMATS,
    STDOUT,
    Job,
    check_out_name,
    file_target,
    index_width,
    infer_format,
    label_dir,
)
from mnistgen.predictor import decoder_note
from mnistgen.runtime import human_bytes, human_bytes_apart, import_paddle, memory_budget, usable_cpus
from mnistgen.sample import Sampler, Shard
from mnistgen.sampling import Sampling, resolve_sampling

METADATA_FILE = "metadata.jsonl"
IDX_PREFIX = "train"  # train-images-idx3-ubyte.gz: the name MNIST loaders look for
MAX_IN_FLIGHT = 8  # decoded blocks queued for the PNG writers: keeps memory flat
STREAMING_FORMATS = "--format hdf5 or --format tar (to a file, or --out - for a pipe)"


def _label_byte(label: int) -> int:
    return 0 if label == UNLABELLED else label  # file formats store uint8 labels


def _plan_png(job: Job) -> tuple[Path, ...]:
    out = job.out
    if out.exists() and not out.is_dir():
        raise MnistgenError(
            f"--out {out} is a file: give a directory (or a name ending in {FILE_SUFFIXES} for one file)"
        )
    atomic.check_writable_dir(out)
    targets = (out / job.shard_name(METADATA_FILE),)
    if out.is_dir():
        staging.check_interrupted_swap(out)  # first: its hidden folders hold the output, not leftovers
    if not out.is_dir() or not _entries(out):
        return targets
    if job.resume:
        record = out / job.shard_name(MANIFEST_FILE)
        if record.exists() or not records.other_runs_files(job):
            records.check_same_job(job, record, out)
        return targets
    if job.force:
        records.check_replaceable(job)
    if job.sharded:  # other shards may share the directory: only this shard's files conflict
        clash = targets[0].exists() or any(records.owned_existing(job))
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


def _entries(out: Path) -> list[Path]:
    """What `out` holds, less the temporaries a killed writer left (removed when the job runs)."""
    return [entry for entry in out.iterdir() if not staging.stale_temporary(entry)]


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
        targets = (file_target(out, job.shard),)
    atomic.check_writable_dir(targets[0].parent)
    existing = [t for t in targets if t.exists()]
    records.refuse_special(existing)
    if existing and not (job.force or job.resume):
        raise MnistgenError(f"{existing[0]} already exists: pass --force to replace it, or choose another --out")
    if existing:  # --force replaces, --resume keeps: either only the output of generate itself
        records.check_same_job(job, records.record_path(out, job.fmt, job.shard), existing[0], same_settings=job.resume)
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


def _plan_stream(job: Job) -> tuple[Path, ...]:
    if job.fmt is not Format.tar:
        raise MnistgenError(
            f"--out - streams to standard output as --format tar only; --format {job.fmt.value} needs --out "
            + ("DIR" if job.fmt in FOLDER_FORMATS else "FILE")
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
    if job.fmt in (Format.png, Format.hdf5, Format.idx, Format.tar):
        return 0  # written block by block
    raise ValueError(f"held_bytes does not know --format {job.fmt.value}")


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
    sampling = sampling or resolve_sampling(weights)
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
        records.check_siblings(job, records.asked_precision(job))
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
        staging.remove_stale_temporaries(out)  # e.g. the staging folder of a --force run that was killed
    except OSError as exc:
        raise MnistgenError(f"cannot create --out {out}: {exc.strerror}; choose a writable directory") from None
    write_manifest(job, out, attrs, replace=job.force or job.resume)
    try:
        for label in job.labels:
            (out / label_dir(label)).mkdir(exist_ok=True)
            if job.resume or job.force:
                staging.remove_stale_temporaries(out / label_dir(label))
        if job.resume or job.force:
            staging.remove_stale_temporaries(out)
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
                "z": [round(float(v), export.Z_DECIMALS) for v in z],
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


def _run_png(job: Job, sampler: Sampler, attrs: dict, report: Callable[[int], None]) -> int:
    """Write the job's PNGs; returns how many were written (a --resume skips those already there)."""
    if not job.size:
        return 0  # an empty shard adds nothing to the folder the other shards share
    if not staging.stages(job):
        return _write_png_dir(job, sampler, attrs, report)
    staged = staging.make_staging(job.out)
    try:
        fresh = replace(job, out=staged, targets=(staged / job.targets[0].name,), force=False)
        written = _write_png_dir(fresh, sampler, attrs, report)
        staging.swap_in(job.out, staged)
        return written
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # gone after a swap; after a failure, the partial output


def _write_png_dir(job: Job, sampler: Sampler, attrs: dict, report: Callable[[int], None]) -> int:
    _prepare_png_dir(job, attrs)
    existing = (
        {label: records.existing_pngs(job, label) for label in job.labels}
        if job.resume
        else {label: set() for label in job.labels}
    )
    width = index_width(job.count)

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
    elif job.fmt is Format.idx:
        writer = export.IdxWriter(job.targets[0], job.targets[1], job.size, replace=replacing)
    else:  # png is _run_png's; a new format needs its writer here, not another's
        raise ValueError(f"no file writer for --format {job.fmt.value}")
    if not job.streams:
        folder = job.targets[0].parent
        folder.mkdir(parents=True, exist_ok=True)
        if job.resume or job.force:
            staging.remove_stale_temporaries(folder)
    start = job.bounds[0]
    with writer:
        for label, block, lo, hi in sample.plan(job.labels, job.count, job.shard):
            batch = sampler.batch(job.seed, label, block, lo, hi)
            position = job.labels.index(label) * job.count + lo - start
            writer.write(batch.images, label if job.fmt is Format.tar else _label_byte(label), batch.z, position)
            report(position + hi - lo)
        acceptance = _measured_acceptance(sampler)
        if acceptance is not None:  # read by the writer as it finishes the file
            attrs[records.ACCEPTANCE_KEY] = acceptance
    if job.fmt is Format.idx:  # last: a manifest names only files that are there
        write_manifest(job, job.targets[0].parent, attrs)
    return job.size


def _measured_acceptance(sampler: Sampler) -> Optional[float]:
    """The share of candidates the verifier kept in this run; None when it judged none (or there is none)."""
    confidence = sampler.confidence
    return round(confidence.accepted / confidence.tried, 4) if confidence is not None and confidence.tried else None


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
    decoded otherwise (records.check_decoding)."""
    precision, paddle = sampler.decoder.precision, import_paddle().__version__
    records.check_decoding(job, precision, paddle)
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
        measured[records.ACCEPTANCE_KEY] = acceptance if acceptance is not None else records.recorded_acceptance(job)
    return {**measured, **attrs}
