"""A generate job: the output directory, sampling, PNG writing, metadata and the summary.

Knows nothing of the terminal: progress goes to an `on_progress(done, images_per_s)` callback.
PNG encoding runs in a thread pool beside the decoder (zlib releases the GIL), and every file
is written under a temporary name and renamed, so an interrupted job leaves only complete files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from mnistgen import __version__, atomic, export, sample
from mnistgen.checkpoint import Weights
from mnistgen.errors import MnistgenError
from mnistgen.runtime import usable_cpus

METADATA_FILE = "metadata.jsonl"
UNLABELLED_DIR = "unlabelled"
MIN_INDEX_WIDTH = 5  # 00000.png ... 99999.png; wider when a label has more images
MAX_IN_FLIGHT = 8  # blocks queued for the PNG writers: keeps memory flat
Z_DECIMALS = 6


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


def label_dir(label: int) -> str:
    return UNLABELLED_DIR if label == sample.UNLABELLED else str(label)


def _ours(path: Path) -> bool:
    """Whether an entry of an output directory is something `generate` writes."""
    if path.name == METADATA_FILE:
        return path.is_file()
    return path.is_dir() and (path.name.isdigit() or path.name == UNLABELLED_DIR)


def prepare_out(out: Path, force: bool) -> None:
    """Refuse a non-empty output unless --force; with --force remove earlier generate output only."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MnistgenError(f"--out {out} is a file: give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise MnistgenError(f"--out {out} is not empty: pass --force to replace its images, or choose another directory")
        for entry in out.iterdir():
            if _ours(entry):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistgenError(f"cannot create --out {out}: {exc.strerror}; choose a writable directory") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise MnistgenError(f"--out {out} is not writable: choose a writable directory")


def write_pngs(
    weights: Weights,
    labels: list[int],
    count: int,
    out: Path,
    seed: int,
    temperature: float = 1.0,
    on_progress: Callable[[int, float], None] = lambda done, rate: None,
    threads: Optional[int] = None,
) -> dict:
    """Write `count` PNGs per label into OUT/<label>/<index>.png plus OUT/metadata.jsonl; return the summary."""
    out = Path(out)
    model = sample.load_model(weights)
    width = max(MIN_INDEX_WIDTH, len(str(count - 1)))
    for label in labels:
        (out / label_dir(label)).mkdir(exist_ok=True)
    started, done = time.perf_counter(), 0
    pending: deque = deque()
    with atomic.atomic_path(out / METADATA_FILE) as meta_tmp, open(meta_tmp, "w", encoding="utf-8") as meta, ThreadPoolExecutor(threads or usable_cpus()) as pool:
        for batch in sample.generate(model, labels, count, seed, temperature):
            folder = out / label_dir(batch.label)
            names = [f"{i:0{width}d}.png" for i in batch.indices]
            pending.append(pool.submit(_write_block, folder, names, batch.images))
            for name, z in zip(names, batch.z):
                row = {"file_name": f"{folder.name}/{name}", "label": None if batch.label == sample.UNLABELLED else int(batch.label),
                       "seed": seed, "z": [round(float(v), Z_DECIMALS) for v in z]}
                meta.write(json.dumps(row) + "\n")
            while len(pending) > MAX_IN_FLIGHT or (pending and pending[0].done()):
                done += pending.popleft().result()
                on_progress(done, done / (time.perf_counter() - started))
        while pending:
            done += pending.popleft().result()
        meta.flush()
    seconds = time.perf_counter() - started
    on_progress(done, done / seconds)
    return {
        "count": done,
        "outputs": [str(out / label_dir(label)) for label in labels] + [str(out / METADATA_FILE)],
        "seconds": round(seconds, 3),
        "images_per_s": round(done / seconds, 1),
        "seed": seed,
        "temperature": temperature,
        "model": weights.name,
        "model_sha256": weights.sha256,
        "mnistgen_version": __version__,
    }


def _write_block(folder: Path, names: list[str], images) -> int:
    for name, image in zip(names, images):
        export.write_png(folder / name, image)
    return len(names)
