"""What a generate output is called: the format --out names, the files and shard tags a job writes,
and the Job that carries them, frozen by `generate.plan_job`.

An --out's suffix names its format (no suffix, or a final "/": a folder of PNGs; `-`: a tar
stream on standard output), and a name that would make a folder by mistake (x.zip, x.tar.gz) is
refused. A shard writes its own files: its tag (.shard-00002-of-00008) before the suffix, or its
index in place of {shard}. Pure Python, no Paddle: the CLI reads it before it loads a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mnistgen import sources
from mnistgen.checkpoint import Weights
from mnistgen.config import MANIFEST_FILE, UNLABELLED, UNLABELLED_DIR, Format
from mnistgen.errors import MnistgenError
from mnistgen.sample import Shard
from mnistgen.sampling import Sampling
from mnistgen.version import __version__

MANIFEST_STEM = Path(MANIFEST_FILE).stem  # a shard's manifest is mnistgen.shard-...json
MIN_INDEX_WIDTH = 5  # 00000.png ... 99999.png; wider when a label has more images
PADDLE_KEY = "paddle_version"  # recorded beside every output: bf16 pixels differ between Paddle versions
MODEL_PATH_KEY = "model_path"  # recorded beside every output: the weights file, absolute, with its sha256

SUFFIX_FORMATS = {
    ".h5": Format.hdf5,
    ".hdf5": Format.hdf5,
    ".npz": Format.npz,
    ".png": Format.grid,
    ".tar": Format.tar,
}
FORMAT_SUFFIXES = {Format.hdf5: ".h5", Format.npz: ".npz", Format.grid: ".png", Format.tar: ".tar"}
FILE_SUFFIXES = ", ".join(  # for messages: ".h5, .hdf5, .npz, .png (a grid), .tar"
    suffix + (" (a grid)" if fmt is Format.grid else "") for suffix, fmt in SUFFIX_FORMATS.items()
)
FOLDER_FORMATS = (Format.png, Format.idx)
FILE_FORMATS = (Format.hdf5, Format.npz, Format.grid, Format.tar)
STDOUT = "-"  # --out -: a stream on standard output (tar only)
COMPRESSED_SUFFIXES = (".gz", ".tgz", ".bz2", ".xz", ".zst", ".zip")  # --out x.tar.gz --format tar: not compressed
SHARD_FIELD = "{shard}"  # --out synth-{shard}.tar: the shard's index, 00000, 00001, ...


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
        f"--out {path}: generate writes no {suffix} files: name it {FILE_SUFFIXES}, or pass --format png (or idx) "
        f"to make a folder named {path.name}"
    )


def label_dir(label: int) -> str:
    return UNLABELLED_DIR if label == UNLABELLED else str(label)


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
        return with_shard_tag(name, self.shard)

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
            MODEL_PATH_KEY: str(self.weights.path.resolve()),  # where evaluate --images finds its companion classifier
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


def with_shard_tag(name: str, shard: Shard) -> str:
    if shard.count <= 1:
        return name
    return sources.shard_file(name, f".shard-{shard.index:05d}-of-{shard.count:05d}")


def file_target(out: Path, shard: Shard) -> Path:
    """A single-file output's name for `shard`: its index in place of {shard}, else its tag before the suffix."""
    if SHARD_FIELD in out.name:
        return out.with_name(out.name.replace(SHARD_FIELD, f"{shard.index:05d}"))
    return out.with_name(with_shard_tag(out.name, shard))


def index_width(count: int) -> int:
    return max(MIN_INDEX_WIDTH, len(str(count - 1)))
