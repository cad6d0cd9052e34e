"""A generate job: what to write where, conflict checks, the decode/write loop and its summary.

`plan_job` is pure Python (no Paddle): the CLI calls it before importing Paddle, so a bad
`--out`, a conflict or a label the model lacks is reported at once and nothing is written.
`run_job` decodes block by block and hands images to a writer (export.py); for PNGs the
encoding runs in a thread pool beside the decoder. Every file appears under its final name
only when complete, so Ctrl-C or a kill leaves complete files, and `--resume` writes the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

from mnistgen import __version__, atomic, export, sample
from mnistgen.checkpoint import Weights
from mnistgen.errors import MnistgenError
from mnistgen.predictor import decoder_note
from mnistgen.runtime import usable_cpus
from mnistgen.sample import Shard

METADATA_FILE = "metadata.jsonl"
MANIFEST_FILE = "mnistgen.json"  # model, sha256, seed, command: beside PNG and IDX outputs
UNLABELLED_DIR = "unlabelled"
IDX_PREFIX = "train"  # train-images-idx3-ubyte.gz: the name MNIST loaders look for
MIN_INDEX_WIDTH = 5  # 00000.png ... 99999.png; wider when a label has more images
MAX_IN_FLIGHT = 8  # decoded blocks queued for the PNG writers: keeps memory flat
Z_DECIMALS = 6


class Format(str, Enum):
    png = "png"
    hdf5 = "hdf5"
    npz = "npz"
    idx = "idx"
    grid = "grid"


SUFFIX_FORMATS = {".h5": Format.hdf5, ".hdf5": Format.hdf5, ".npz": Format.npz, ".png": Format.grid}
FILE_FORMATS = (Format.hdf5, Format.npz, Format.grid)


def infer_format(out: Path, fmt: Optional[Format]) -> Format:
    return Format(fmt) if fmt is not None else SUFFIX_FORMATS.get(Path(out).suffix.lower(), Format.png)


def labels_for(weights: Weights, digits: Optional[list[int]]) -> list[int]:
    """The labels to generate: the requested digits for a CVAE, the one unlabelled stream for a VAE."""
    config = weights.config
    if not config.conditional:
        if digits is not None:
            raise MnistgenError(
                f"model {weights.name} is an unconditional VAE and has no labels: drop --digit (it writes to {UNLABELLED_DIR}/), or use a conditional model such as cvae-2d"
            )
        return [sample.UNLABELLED]
    if digits is None:
        return list(range(config.num_classes))
    bad = [d for d in digits if d >= config.num_classes]
    if bad:
        raise MnistgenError(f"--digit {bad[0]}: model {weights.name} knows labels 0-{config.num_classes - 1} only")
    return digits


def resolve_classes(weights: Weights, text: str) -> list[int]:
    """`--class Sneaker,0` -> label indices, by the names in the model card or as indices."""
    names = weights.card.get("classes") or [str(i) for i in range(getattr(weights.config, "num_classes", 10))]
    found = []
    for item in (part.strip() for part in text.split(",")):
        if item in names:
            found.append(names.index(item))
        elif item.isdigit() and int(item) < len(names):
            found.append(int(item))
        else:
            raise MnistgenError(
                f"--class {item!r}: model {weights.name} has classes {', '.join(names)} (or their indices 0-{len(names) - 1})"
            )
    return sorted(set(found))


def label_dir(label: int) -> str:
    return UNLABELLED_DIR if label == sample.UNLABELLED else str(label)


def _label_byte(label: int) -> int:
    return 0 if label == sample.UNLABELLED else label  # file formats store uint8 labels


@dataclass
class Job:
    weights: Weights
    labels: list[int]  # in output order
    count: int  # images per label
    out: Path
    fmt: Format
    seed: int
    temperature: float = 1.0
    shard: Shard = Shard(0, 1)
    force: bool = False
    resume: bool = False
    scale: int = 1  # grid only
    command: str = ""
    confidence: Optional[sample.ConfidenceFilter] = None  # --min-confidence
    prior: sample.Prior = sample.Prior()  # --prior
    precision: str = "fp32"  # the decoder's arithmetic (set by run_job), recorded with the output
    sharpen: float = 1.0  # the decoder's output sharpening (set by run_job), recorded with the output
    targets: list[Path] = field(default_factory=list)  # files this job writes (set by plan_job)

    @property
    def sharded(self) -> bool:
        return self.shard.count > 1

    @property
    def bounds(self) -> tuple[int, int]:
        return self.shard.bounds(len(self.labels) * self.count)

    @property
    def size(self) -> int:
        start, stop = self.bounds
        return stop - start

    def shard_name(self, name: str) -> str:
        """`name` with this shard's tag before the suffix: metadata.shard-00002-of-00008.jsonl."""
        if not self.sharded:
            return name
        stem, dot, suffix = name.partition(".")
        return f"{stem}.shard-{self.shard.index:05d}-of-{self.shard.count:05d}{dot}{suffix}"

    def attrs(self) -> dict:
        return {
            "model": self.weights.name,
            "model_sha256": self.weights.sha256,
            "seed": self.seed,
            "temperature": self.temperature,
            "prior": self.prior.kind,
            "truncation": self.prior.truncation or 0,
            "count_per_label": self.count,
            "labels": [int(label) for label in self.labels],
            "shard": f"{self.shard.index}/{self.shard.count}",
            "sharpen": self.sharpen,
            "precision": self.precision,
            "mnistgen_version": __version__,
            "command": self.command,
            **({"min_confidence": self.confidence.threshold} if self.confidence else {}),
        }


def _index_width(count: int) -> int:
    return max(MIN_INDEX_WIDTH, len(str(count - 1)))


def _png_path(job: Job, label: int, index: int) -> Path:
    return job.out / label_dir(label) / f"{index:0{_index_width(job.count)}d}.png"


def _ours(path: Path) -> bool:
    """Whether an entry of an output directory is something `generate` writes."""
    if (path.name.startswith("metadata") and path.name.endswith(".jsonl")) or path.name.startswith(
        MANIFEST_FILE.split(".")[0]
    ):
        return path.is_file()
    return path.is_dir() and (path.name.isdigit() or path.name == UNLABELLED_DIR)


def _check_writable_dir(directory: Path) -> None:
    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise MnistgenError(f"--out {directory}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise MnistgenError(f"--out {directory} is not writable: choose a directory you can write to")


def _plan_png(job: Job) -> None:
    out = job.out
    if out.exists() and not out.is_dir():
        raise MnistgenError(
            f"--out {out} is a file: give a directory (or a name ending in .h5, .npz or .png for one file)"
        )
    _check_writable_dir(out)
    job.targets = [out / job.shard_name(METADATA_FILE)]
    if not out.is_dir() or job.resume:
        return
    if job.sharded:  # other shards may share the directory: only this shard's files conflict
        clash = job.targets[0].exists() or any(_owned_existing(job))
        if clash and not job.force:
            raise MnistgenError(
                f"--out {out} already holds shard {job.shard.index}/{job.shard.count}'s files: pass --resume to finish them or --force to replace them"
            )
        return
    if any(out.iterdir()) and not job.force:
        raise MnistgenError(
            f"--out {out} is not empty: pass --force to replace its images, --resume to finish an interrupted job, or choose another directory"
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


def _plan_files(job: Job) -> None:
    out = job.out
    if job.fmt is Format.idx:
        if out.exists() and not out.is_dir():
            raise MnistgenError(f"--out {out} is a file: --format idx writes a pair of files into a directory")
        stem = job.shard_name(IDX_PREFIX)
        job.targets = [out / f"{stem}-images-idx3-ubyte.gz", out / f"{stem}-labels-idx1-ubyte.gz"]
    else:
        if out.is_dir():
            raise MnistgenError(
                f"--out {out} is a directory: --format {job.fmt.value} writes one file; give a file name"
            )
        job.targets = [out.with_name(job.shard_name(out.name))]
    _check_writable_dir(job.targets[0].parent)
    existing = [t for t in job.targets if t.exists()]
    if existing and not (job.force or job.resume):
        raise MnistgenError(f"{existing[0]} already exists: pass --force to replace it, or choose another --out")
    if job.fmt is Format.grid:
        columns = job.count
        if job.sharded:
            raise MnistgenError("--format grid makes one preview picture: it cannot be sharded; drop --shard")
        if columns > export.GRID_MAX_COLUMNS and not (
            len(job.labels) == 1
            and columns % export.GRID_WRAP == 0
            and columns // export.GRID_WRAP <= export.GRID_MAX_COLUMNS
        ):
            raise MnistgenError(f"--format grid draws --count images per row: use at most {export.GRID_MAX_COLUMNS}")


def plan_job(job: Job) -> Job:
    """Check the output for conflicts and fill `job.targets`; writes nothing."""
    if job.shard.count < 1 or not 0 <= job.shard.index < job.shard.count:
        raise MnistgenError(f"--shard {job.shard.index}/{job.shard.count}: use i/n with 0 <= i < n")
    if job.size == 0:
        raise MnistgenError(
            f"--shard {job.shard.index}/{job.shard.count} gets no images out of {len(job.labels) * job.count}: use fewer shards"
        )
    _plan_png(job) if job.fmt is Format.png else _plan_files(job)
    return job


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed writer left (".NAME.PID-TID.part"); outputs, and the
    temporaries of writers still running (another shard), are never touched."""
    if folder.is_dir():
        for entry in folder.glob(".*" + atomic.TEMP_SUFFIX):
            if not atomic.writer_alive(entry):
                entry.unlink(missing_ok=True)


def write_manifest(job: Job, folder: Path) -> Path:
    """A small JSON file beside the output naming the model, its sha256, the seed and the command."""
    path = folder / job.shard_name(MANIFEST_FILE)
    atomic.write_text(path, json.dumps(job.attrs(), indent=1) + "\n")
    return path


def _prepare_png_dir(job: Job) -> None:
    out = job.out
    if job.force and out.is_dir() and not job.sharded:
        for entry in out.iterdir():
            if _ours(entry):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        for label in job.labels:
            (out / label_dir(label)).mkdir(exist_ok=True)
            if job.resume or job.force:
                remove_stale_temporaries(out / label_dir(label))
        if job.resume or job.force:
            remove_stale_temporaries(out)
    except OSError as exc:
        raise MnistgenError(f"cannot create --out {out}: {exc.strerror}; choose a writable directory") from None
    write_manifest(job, out)


def _metadata_rows(job: Job, batch, names) -> str:
    label = None if batch.label == sample.UNLABELLED else int(batch.label)
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


def _write_pngs(folder: Path, names: list[str], images, skip: set) -> int:
    for name, image in zip(names, images):
        if name not in skip:
            export.write_png(folder / name, image)
    return len(names)


def _run_png(job: Job, decoder, report: Callable[[int], None]) -> None:
    _prepare_png_dir(job)
    existing = (
        {label: _existing_pngs(job, label) for label in job.labels}
        if job.resume
        else {label: set() for label in job.labels}
    )
    width = _index_width(job.count)

    def written(label, lo, hi) -> bool:  # resume: a block whose files all exist is not decoded
        have = existing[label]
        return bool(have) and all(f"{i:0{width}d}.png" in have for i in range(lo, hi))

    pending: deque = deque()
    done = 0
    with atomic.atomic_path(job.targets[0]) as meta_tmp, open(meta_tmp, "w", encoding="utf-8") as meta:
        pool = ThreadPoolExecutor(usable_cpus())
        try:
            for label, block, lo, hi in sample.plan(job.labels, job.count, job.shard):
                names = [f"{i:0{width}d}.png" for i in range(lo, hi)]
                batch = sample.block_batch(
                    decoder,
                    job.seed,
                    label,
                    block,
                    lo,
                    hi,
                    job.temperature,
                    decode=not written(label, lo, hi),
                    confidence=job.confidence,
                    prior=job.prior,
                )
                meta.write(_metadata_rows(job, batch, names))
                if batch.images is None:
                    done += len(names)
                    report(done)
                    continue
                pending.append(
                    pool.submit(_write_pngs, job.out / label_dir(label), names, batch.images, existing[label])
                )
                while len(pending) > MAX_IN_FLIGHT or (pending and pending[0].done()):
                    done += pending.popleft().result()
                    report(done)
            while pending:
                done += pending.popleft().result()
                report(done)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # running writes finish (each is atomic)


def _run_file(job: Job, decoder, report: Callable[[int], None]) -> None:
    if job.resume and all(t.exists() for t in job.targets):
        report(job.size)  # already complete: files appear only when whole
        return
    latent, attrs = decoder.config.latent, job.attrs()
    if job.fmt is Format.hdf5:
        writer = export.Hdf5Writer(job.targets[0], job.size, latent, attrs)
    elif job.fmt is Format.npz:
        writer = export.NpzWriter(job.targets[0], job.size, latent, attrs)
    elif job.fmt is Format.grid:
        writer = export.GridWriter(job.targets[0], job.size, latent, attrs, rows=len(job.labels), scale=job.scale)
    else:
        writer = export.IdxWriter(job.targets[0], job.targets[1], job.size)
    folder = job.targets[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    if job.resume or job.force:
        remove_stale_temporaries(folder)
    if job.fmt is Format.idx:
        write_manifest(job, folder)
    start = job.bounds[0]
    with writer:
        for label, block, lo, hi in sample.plan(job.labels, job.count, job.shard):
            batch = sample.block_batch(
                decoder, job.seed, label, block, lo, hi, job.temperature, confidence=job.confidence, prior=job.prior
            )
            position = job.labels.index(label) * job.count + lo - start
            writer.write(batch.images, _label_byte(label), batch.z, position)
            report(position + hi - lo)


def run_job(job: Job, decoder, on_progress: Callable[[int, float], None] = lambda done, rate: None) -> dict:
    """Generate and write this job's images; returns the summary printed as JSON."""
    started = time.perf_counter()
    job.precision, job.sharpen = decoder.precision, decoder.sharpen

    def report(done: int) -> None:
        on_progress(done, done / max(time.perf_counter() - started, 1e-9))

    (_run_png if job.fmt is Format.png else _run_file)(job, decoder, report)
    seconds = time.perf_counter() - started
    outputs = (
        [str(job.out / label_dir(label)) for label in job.labels] + [str(job.targets[0])]
        if job.fmt is Format.png
        else [str(t) for t in job.targets]
    )
    return {
        "count": job.size,
        "format": job.fmt.value,
        "outputs": outputs,
        "seconds": round(seconds, 3),
        "images_per_s": round(job.size / seconds, 1),
        "seed": job.seed,
        "temperature": job.temperature,
        "prior": job.prior.kind,
        "truncation": job.prior.truncation or 0,
        "sharpen": job.sharpen,
        "shard": f"{job.shard.index}/{job.shard.count}",
        "model": job.weights.name,
        "model_sha256": job.weights.sha256,
        "decoder": decoder.name,
        **({"decoder_note": note} if (note := decoder_note(decoder)) else {}),
        "precision": decoder.precision,
        "mnistgen_version": __version__,
        **(
            {"min_confidence": job.confidence.threshold, "acceptance_rate": round(job.confidence.acceptance, 4)}
            if job.confidence
            else {}
        ),
    }
