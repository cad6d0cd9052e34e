"""The one input reader: every form of images a user points mnistgen at, for `train --data`,
`encode` and `evaluate` alike.

Forms: a directory of MNIST IDX files (test split included; or one set named as EMNIST names
them), one IDX images file (its labels file beside it), the tutorial's `train.mat`, an ImageFolder
`DIR/<class>/*.png|jpg|...` (labels from the folder names; hidden files and folders skipped), a
flat folder of pictures (unlabelled), single pictures, the HDF5/NPZ files `generate` writes
(`images` uint8 (N, 28, 28), `labels`, `z`) and Keras's mnist.npz (`x_train`, `y_train`, and
`x_test`, `y_test` as the test split).

Every reader bounds what it allocates before reading: picture sizes from their headers, image
counts from IDX/HDF5/NPZ headers (and an NPZ's bytes and dtype), files in a folder; HDF5 is read
a chunk at a time, and only what `limit` keeps. A source without images, images that are not
whole numbers 0-255 (or [0, 1] for the .mat) and labels that are not classes 0-255 are refused.
A bad input is refused with one line that names the file and the fix; nothing is half-read.
Pictures that are not 28x28 grayscale are converted (to grayscale, then resized with Lanczos)
and summed up in one note, returned to the caller (the library prints nothing), with one more when
most images are dark on a light background. `load` gives a `data.Dataset` (training), `read` gives
`Images` (encoding, scoring).
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
import re
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen import data, untrusted
from mnistgen.config import (
    IMAGE_SIZE,
    IMAGE_SUFFIXES,
    INPUT_FORMS,
    MANIFEST_FILE,
    MAX_CLASSES,
    UNLABELLED,
    UNLABELLED_DIR,
    listed,
)
from mnistgen.data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MNIST_FILES, Dataset, Split
from mnistgen.errors import MnistgenError

METADATA_SUFFIXES = {".jsonl", ".json", ".csv", ".txt", ".md"}  # beside images (generate writes metadata.jsonl)
SIDE = IMAGE_SIZE

MAX_PICTURE_PIXELS = 25_000_000  # a 5000x5000 picture; larger ones are refused before decoding
MAX_PICTURE_SIDE = 10_000  # pixels on one side: a 1x25,000,000 strip passes the pixel bound but costs GBs to resize
PICTURE_FORMATS = (
    "PNG",
    "JPEG",
    "BMP",
    "GIF",
    "TIFF",
    "WEBP",
)  # by content (JPEG covers MPO); never EPS: Ghostscript runs it
MAX_IMAGES = 2_000_000  # images in one source (1.5 GB as uint8): counts in headers are checked against it
MAX_READ_BYTES = MAX_IMAGES * SIDE * SIDE  # an .npz array declaring more is refused before it is read
MAX_ATTRS_BYTES = 1 << 20  # the settings an output records (npz attrs, a manifest): read no more of them than this
MAX_CHUNK_BYTES = 64 << 20  # one HDF5 chunk is decompressed whole: generate writes 0.1 MB ones
MAX_FOLDER_ENTRIES = 2 * MAX_IMAGES  # files and folders one folder walk lists before it is refused
READ_CHUNK = 4096  # images read (HDF5) and converted at a time: a float source never sits in memory twice
MAX_PIXEL = 255
TAR_MAGIC, TAR_MAGIC_END = b"ustar", 262  # a POSIX tar header's magic, at bytes 257-261
NUMERIC_KINDS = "biuf"  # bool, int, uint, float: the dtypes images and labels may have

GZIP_MAGIC = data.GZIP_MAGIC
HDF5_MAGIC = b"\x89HDF"
ZIP_MAGIC = b"PK\x03\x04"  # an .npz is a zip of .npy files
EMPTY_ZIP_MAGIC = b"PK\x05\x06"  # a zip of nothing (np.savez() with no arrays) starts with its end record

GENERATE_LAYOUT = f"images uint8 (N, {SIDE}, {SIDE}) and labels (N,), as generate writes"
KERAS_LAYOUT = (
    f"x_train (N, {SIDE}, {SIDE}) and y_train (N,), with x_test and y_test as a test split, as Keras's mnist.npz"
)
MAT_LAYOUT = f"'image' (N, 1, {SIDE}, {SIDE}) in [0, 1] and one-hot 'label' (N, classes), as the tutorial's train.mat"
SCALE_FIX = f"scale the images to 0..{MAX_PIXEL} and save them as uint8"

FORMS = listed([form.short for form in INPUT_FORMS])  # what a refusal tells the user to pass


@dataclass
class Images:
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: Optional[np.ndarray]  # int64 (N,), or None when no source gave labels
    names: list[str]  # where each image came from: a path, or file[index]
    notes: list[str] = field(default_factory=list)  # for the user: the conversions made; a light background
    classes: list[str] = field(default_factory=list)  # label names, when the source named them (ImageFolder)

    def __repr__(self) -> str:
        """How many, labelled how, from where: not the pixels, nor a name per image."""
        labels = "unlabelled" if self.labels is None else "labelled"
        named = f", classes {data.shown(self.classes)}" if self.classes else ""
        first = f", first {self.names[0]}" if self.names else ""
        notes = f", {len(self.notes)} note{'s' * (len(self.notes) != 1)}" if self.notes else ""
        count = f"{len(self.images)} image{'s' * (len(self.images) != 1)}"
        return f"<mnistgen Images: {count}, {labels}{named}{first}{notes}>"


@dataclass(frozen=True)
class Owner:
    """Whose classes a source is read by (`read`'s `classes`), and what else to do about a class
    it lacks: both go into the refusal, so it fits the command (encode's model, evaluate's judge)."""

    name: str = "the model"
    fix: str = "pass --labels"


@dataclass
class _Part:
    """What one source holds: the common result of every reader below."""

    images: np.ndarray  # uint8 (N, 28, 28)
    labels: Optional[np.ndarray]  # int64 (N,) or None
    source: Path
    names: Optional[list[str]] = None  # None: "source[i]"
    classes: list[str] = field(default_factory=list)
    test: Optional[Split] = None  # an IDX directory's t10k pair

    def image_names(self) -> list[str]:
        return self.names if self.names is not None else [f"{self.source}[{i}]" for i in range(len(self.images))]


# -- IDX ------------------------------------------------------------------------------------------


def _check_count(path: Path, count: int, allow_empty: bool = False) -> None:
    """A count from a header: 1 to MAX_IMAGES images (an empty labels file shows as a mismatched pair)."""
    if count == 0 and not allow_empty:
        raise MnistgenError(f"{path} holds no images: pass a file or folder with at least one image")
    if count > MAX_IMAGES:
        raise MnistgenError(
            f"{path} declares {count:,} images, more than mnistgen reads at once ({MAX_IMAGES:,}): split it into "
            "smaller files"
        )


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (images: (N, 28, 28); labels: (N,)), gzipped or not. The header is checked
    (magic number, 28x28, count bound) before the body is read; gzip is read as a stream, so a
    file cannot inflate past what its header promises."""
    path = Path(path)
    ndim = 3 if magic == IDX_IMAGES_MAGIC else 1
    header_len = 4 + 4 * ndim
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below, with the gzip stream)
    except OSError as exc:
        raise MnistgenError(f"cannot read {path}: {exc.strerror}") from None
    with raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        try:
            header = stream.read(header_len)
            if len(header) < header_len:
                raise MnistgenError(f"{path} is too short to be an IDX file: download it again")
            found = int.from_bytes(header[:4], "big")
            if found != magic:
                raise MnistgenError(f"{path} has IDX magic number {found}, expected {magic}: is it the right file?")
            dims = [int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            _check_count(path, dims[0], allow_empty=ndim == 1)
            if ndim == 3 and tuple(dims[1:]) != (SIDE, SIDE):
                raise MnistgenError(f"{path} holds {dims[1]}x{dims[2]} images: mnistgen needs {SIDE}x{SIDE}")
            expected = int(np.prod(dims))
            body = stream.read(expected)
            longer = stream.read(1) != b""
        except (EOFError, OSError, zlib.error):
            raise MnistgenError(f"{path} is a truncated or corrupt gzip file: download it again") from None
    if len(body) < expected:
        raise MnistgenError(
            f"{path} holds {header_len + len(body)} bytes but its header promises {header_len + expected}: the file "
            "is truncated; download it again"
        )
    if longer:
        raise MnistgenError(
            f"{path} holds more bytes than its header promises ({header_len + expected}): is it an IDX file? "
            "download it again"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(directory: Path, stem: str) -> Optional[Path]:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


PREFIXED_TRAIN = re.compile(r"(.+-)train-images[-.]idx3-ubyte(\.gz)?")  # EMNIST's emnist-letters-train-images-...
TEST_WORDS = ("t10k", "test")  # MNIST names its test files t10k-..., EMNIST emnist-letters-test-...


def _idx_prefix(directory: Path) -> Optional[str]:
    """What the IDX training files in `directory` are named after: "" for MNIST's own names,
    "emnist-letters-" for EMNIST's (PREFIXED_TRAIN), None when it holds none. Two sets (EMNIST's
    digits and letters, or MNIST's beside one) are refused: which one is meant is not mnistgen's
    to guess."""
    mnist = _find(directory, MNIST_FILES["train_images"].stem)
    found = {"": mnist} if mnist is not None else {}
    for path in sorted(directory.glob("*-train-images?idx3-ubyte*")):
        named = PREFIXED_TRAIN.fullmatch(path.name)
        if named and path.is_file() and not path.name.startswith("."):  # not macOS's ._emnist-... beside it
            found.setdefault(named.group(1), path)
    if len(found) > 1:
        raise MnistgenError(
            f"{directory} holds {len(found)} IDX training sets ({', '.join(p.name for p in found.values())}): "
            "point --data at a folder holding one of them, or pass its images file"
        )
    return next(iter(found), None)


def _read_split(directory: Path, prefix: str, images_key: str, labels_key: str, word: str = "t10k") -> Optional[Split]:
    """The images/labels pair named `prefix` + MNIST's name (a test file's "t10k" replaced by `word`)."""
    images_stem, labels_stem = (
        prefix + MNIST_FILES[key].stem.replace("t10k", word) for key in (images_key, labels_key)
    )
    images_path, labels_path = _find(directory, images_stem), _find(directory, labels_stem)
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = images_stem if images_path is None else labels_stem
        raise MnistgenError(f"{directory} has no {missing}[.gz]: it needs both the images and the labels file")
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise MnistgenError(
            f"{images_path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels: the pair "
            "does not match"
        )
    return Split(images, labels)


def read_idx_dir(directory: Path) -> Dataset:
    """A directory holding MNIST's IDX files (train pair required, t10k pair optional), or one set
    named as EMNIST names them (emnist-letters-train-images-idx3-ubyte.gz, ...-test-...)."""
    prefix = _idx_prefix(directory)
    train = None if prefix is None else _read_split(directory, prefix, "train_images", "train_labels")
    if train is None:
        raise MnistgenError(
            f"{directory} has no MNIST training files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]): "
            "point --data at the directory that holds them"
        )
    tests = (_read_split(directory, prefix, "test_images", "test_labels", word) for word in TEST_WORDS)
    return Dataset(train, next((split for split in tests if split is not None), None), str(directory))


SHARD_TAG = re.compile(r"\.shard-\d+-of-\d+")  # what generate --shard puts in its file names
SHARD_TAGS = ".shard-*-of-*"  # the same, as a glob


def shard_file(name: str, tag: str) -> str:
    """`name` with a shard's tag (".shard-00002-of-00008", or "") before its suffix:
    metadata.shard-00002-of-00008.jsonl."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}{tag}{dot}{suffix}"


def read_manifest(path: Path) -> Optional[dict]:
    """A manifest generate wrote (a JSON object), when small and well formed; else None."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_ATTRS_BYTES:
            return None
        found = untrusted.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def generated_record(directory: Path, shard: str = "") -> dict:
    """generate's record (mnistgen.json, or a shard's mnistgen.shard-....json) in `directory`: {}
    when there is none, or it is too large or damaged (it only ever adds what the files cannot say)."""
    return read_manifest(directory / shard_file(MANIFEST_FILE, shard)) or {}


def record_beside(images: Path) -> dict:
    """generate's record beside the IDX `images` file (its shard's, by the file's name), or in the
    IDX directory `images`: {} when there is none."""
    directory, tag = (images, None) if images.is_dir() else (images.parent, SHARD_TAG.search(images.name))
    return generated_record(directory, tag.group(0) if tag else "")


def generated_unlabelled(record: dict) -> bool:
    """Whether generate's `record` (record_beside) says its IDX images have no labels (an
    unconditional model's samples): the labels file holds zeros only because the format needs one."""
    return record.get("labels") == [UNLABELLED]


def folder_classes(root: Path, folders: list[str]) -> list[str]:
    """The class names generate recorded for its numbered label folders `root/<index>/`: its
    mnistgen.json's, or (shards sharing the folder) those of every shard's manifest when they agree;
    none for folders named otherwise, or when nothing names every label (then: labels by number)."""
    numbered = [name for name in folders if name != UNLABELLED_DIR]
    if not numbered or not all(name.isdecimal() for name in numbered):
        return []
    labels = np.array([int(name) for name in numbered])
    single = root / MANIFEST_FILE
    records = [single] if single.is_file() else sorted(root.glob(shard_file(MANIFEST_FILE, SHARD_TAGS)))
    found = [recorded_classes((read_manifest(path) or {}).get("classes"), labels) for path in records]
    return found[0] if found and all(names == found[0] for names in found) else []


def _read_idx_file(path: Path) -> _Part:
    images = read_idx(path, IDX_IMAGES_MAGIC)
    name = path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    labels_path = path.with_name(name)
    record = record_beside(path)
    labels = (
        read_idx(labels_path, IDX_LABELS_MAGIC).astype(np.int64)
        if labels_path != path and labels_path.is_file() and not generated_unlabelled(record)
        else None
    )
    if labels is not None and len(labels) != len(images):
        raise MnistgenError(
            f"{path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels: the pair does "
            "not match"
        )
    return _Part(images, labels, path, classes=recorded_classes(record.get("classes"), labels))


# -- HDF5 (generate's files, the tutorial's .mat) and NPZ -----------------------------------------


def _check_images_shape(path: Path, key: str, shape: tuple) -> None:
    if len(shape) != 3 or tuple(shape[1:]) != (SIDE, SIDE):
        raise MnistgenError(f"{path}: '{key}' has shape {tuple(shape)}, expected (N, {SIDE}, {SIDE}) images")
    _check_count(path, shape[0])


def _check_labels_shape(path: Path, shape: tuple, count: int, key: str = "labels") -> None:
    if tuple(shape) != (count,):
        raise MnistgenError(
            f"{path}: '{key}' has shape {tuple(shape)} for {count} images: expected one label per image"
        )


def _check_array(path: Path, key: str, dtype: np.dtype, layout: str, nbytes: int = 0) -> None:
    """Before anything is read: numbers only (no strings, structs, objects), at most MAX_READ_BYTES."""
    if dtype.kind not in NUMERIC_KINDS:
        raise MnistgenError(f"{path}: '{key}' holds {dtype} values, not numbers: mnistgen reads {layout}")
    if nbytes > MAX_READ_BYTES:
        raise MnistgenError(
            f"{path}: '{key}' declares {nbytes:,} bytes of {dtype}, more than mnistgen reads at once "
            f"({MAX_READ_BYTES:,}): save the images as uint8, or split the file"
        )


def _first_bad(values: np.ndarray, high: float, whole: bool = True):
    """The first value that is not in 0..high (a whole number, if `whole`), or None. NaN is bad."""
    bad = ~((values >= 0) & (values <= high))
    if whole and values.dtype.kind == "f":
        bad |= values != np.rint(values)
    hits = np.flatnonzero(bad)
    return values.flat[hits[0]].item() if hits.size else None


def _labels(path: Path, key: str, values: np.ndarray) -> np.ndarray:
    """Class labels as int64, whatever numeric dtype holds them: whole numbers 0..MAX_CLASSES-1."""
    bad = _first_bad(values, MAX_CLASSES - 1)
    if bad is not None:
        raise MnistgenError(
            f"{path}: '{key}' holds {bad:.6g}, not a class label: labels are whole numbers 0-{MAX_CLASSES - 1}; "
            "correct them"
        )
    return values.astype(np.int64)


def _pixels(path: Path, key: str, chunk: np.ndarray) -> np.ndarray:
    return as_pixels(chunk, f"{path}: '{key}'")


def as_pixels(values: np.ndarray, what: str) -> np.ndarray:
    """Images of any numeric dtype as uint8: whole numbers 0-255 only (a cast would turn [0, 1]
    floats black and wrap 256 to 0)."""
    if values.dtype.kind not in NUMERIC_KINDS:
        raise MnistgenError(f"{what} holds {values.dtype} values, not pixels: {SCALE_FIX}")
    bad = _first_bad(values, MAX_PIXEL)
    if bad is not None:
        raise MnistgenError(
            f"{what} holds the pixel value {bad:.6g}: mnistgen reads whole numbers 0-{MAX_PIXEL}; {SCALE_FIX}"
        )
    return values.astype(np.uint8)


def _mat_pixels(path: Path, chunk: np.ndarray) -> np.ndarray:
    """The tutorial's images (k, 1, 28, 28) in [0, 1], rows and columns swapped, as uint8 (k, 28, 28)."""
    bad = _first_bad(chunk, 1, whole=False)
    if bad is not None:
        raise MnistgenError(
            f"{path}: 'image' holds the pixel value {bad:.6g}: the tutorial's train.mat holds pixels in [0, 1]; "
            "scale them"
        )
    pixels = np.rint(chunk.astype(np.float32) * MAX_PIXEL).astype(np.uint8)
    return pixels.reshape(-1, SIDE, SIDE).transpose(0, 2, 1)  # MATLAB stores column-major


def _onehot_labels(path: Path, rows: np.ndarray) -> np.ndarray:
    """The tutorial's one-hot (or soft) label rows (k, classes) as class indices."""
    bad = _first_bad(rows, 1, whole=False)
    if bad is not None:
        raise MnistgenError(f"{path}: 'label' holds {bad:.6g}: mnistgen reads {MAT_LAYOUT}")
    return rows.argmax(axis=1)


def _chunked(count: int, read, dtype, shape: tuple = ()) -> np.ndarray:
    """`read(start, stop)` READ_CHUNK rows at a time into one array: only the result and one chunk in memory."""
    out = np.empty((count, *shape), dtype)
    for start in range(0, count, READ_CHUNK):
        stop = min(start + READ_CHUNK, count)
        out[start:stop] = read(start, stop)
    return out


def _kept(count: int, limit: Optional[int]) -> int:
    return count if limit is None else min(count, limit)


def _read_images(path: Path, key: str, source, count: int) -> np.ndarray:
    """The first `count` images of `source` (an HDF5 dataset or an array, (N, 28, 28), numeric) as uint8.
    Float or bool images in 0-1 are refused: cast, they would all be black."""
    if source.dtype == np.uint8:
        return np.asarray(source[:count])
    images = _chunked(count, lambda a, b: _pixels(path, key, np.asarray(source[a:b])), np.uint8, (SIDE, SIDE))
    if source.dtype.kind in "bf" and images.max() <= 1:
        raise MnistgenError(f"{path}: '{key}' holds {source.dtype} values in 0-1: {SCALE_FIX}")
    return images


def _dataset(path: Path, f, key: str, layout: str):
    """`f[key]`, checked to be an HDF5 dataset of numbers, stored in the file itself, in chunks of
    bounded size: a group, a string/compound type, an empty dataspace, a link to another file,
    external or virtual storage (which read other files: a FIFO would block, /etc/passwd would
    be pixels) and a chunk that decompresses to gigabytes are refused."""
    import h5py

    if isinstance(f.get(key, getlink=True), (h5py.ExternalLink, h5py.SoftLink)):  # a soft one may lead outside too
        raise MnistgenError(f"{path}: '{key}' is a link, not the array itself: {_SAVE_INSIDE}")
    found = f[key]
    if not isinstance(found, h5py.Dataset):
        kind = type(found).__name__.lower()
        raise MnistgenError(f"{path}: '{key}' is an HDF5 {kind}, not an array: mnistgen reads {layout}")
    if found.external or found.is_virtual:
        raise MnistgenError(f"{path}: '{key}' is stored in other files: {_SAVE_INSIDE}")
    if found.shape is None:
        raise MnistgenError(f"{path}: '{key}' is an empty HDF5 dataset (no shape): mnistgen reads {layout}")
    _check_array(path, key, found.dtype, layout)
    chunk_bytes = int(np.prod(found.chunks or ())) * found.dtype.itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise MnistgenError(
            f"{path}: '{key}' is stored in chunks of {chunk_bytes:,} bytes, more than mnistgen decompresses at once "
            f"({MAX_CHUNK_BYTES:,}): save it again with smaller chunks (h5py's chunks=True)"
        )
    return found


_SAVE_INSIDE = "mnistgen reads only data stored inside the file; save the arrays into it (h5py's defaults)"


def read_mat(path: Path, limit: Optional[int] = None) -> Dataset:
    """The tutorial's train.mat: HDF5 with `image` (N, 1, 28, 28) in [0, 1], stored transposed, and one-hot `label`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _mat_from(path, f, limit)
    except OSError as exc:
        raise MnistgenError(f"cannot read {path} as HDF5: {exc}") from None


def _mat_from(path: Path, f, limit: Optional[int] = None) -> Dataset:
    """Read a chunk at a time, the first `limit` images only: a float file is never held whole."""
    if "image" not in f or "label" not in f:
        raise _no_layout(path, list(itertools.islice(f.keys(), SHOWN_KEYS + 1)), [GENERATE_LAYOUT, MAT_LAYOUT])
    image, label = _dataset(path, f, "image", MAT_LAYOUT), _dataset(path, f, "label", MAT_LAYOUT)
    if len(image.shape) < 2 or int(np.prod(image.shape[1:])) != SIDE * SIDE:
        raise MnistgenError(f"{path}: 'image' has shape {image.shape}: mnistgen reads {MAT_LAYOUT}")
    count = image.shape[0]
    _check_count(path, count)
    shape = label.shape
    by_row = len(shape) == 2 and shape[0] == count  # (N, classes); MATLAB's own (N, classes) reads as (classes, N)
    classes = shape[1] if by_row else shape[0] if len(shape) == 2 and shape[1] == count else 0
    if not 2 <= classes <= MAX_CLASSES:
        raise MnistgenError(f"{path}: 'label' has shape {shape} for {count} images: mnistgen reads {MAT_LAYOUT}")
    n = _kept(count, limit)
    images = _chunked(n, lambda a, b: _mat_pixels(path, np.asarray(image[a:b])), np.uint8, (SIDE, SIDE))
    labels = _chunked(
        n, lambda a, b: _onehot_labels(path, np.asarray(label[a:b] if by_row else label[:, a:b].T)), np.uint8
    )
    return Dataset(Split(images, labels), None, str(path))


def _read_hdf5(path: Path, limit: Optional[int] = None) -> _Part:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "images" not in f:  # the tutorial's train.mat
                mat = _mat_from(path, f, limit)
                return _Part(mat.train.images, mat.train.labels.astype(np.int64), path)
            images = _dataset(path, f, "images", GENERATE_LAYOUT)  # written by mnistgen generate
            _check_images_shape(path, "images", images.shape)
            count = _kept(images.shape[0], limit)
            labels = None
            if "labels" in f:
                found = _dataset(path, f, "labels", GENERATE_LAYOUT)
                _check_labels_shape(path, found.shape, images.shape[0])
                labels = _labels(path, "labels", np.asarray(found[:count]))
            classes = recorded_classes(f.attrs.get("classes"), labels)
            return _Part(_read_images(path, "images", images, count), labels, path, classes=classes)
    except OSError as exc:
        raise MnistgenError(f"cannot read {path} as HDF5 ({exc}): is the file complete?") from None


def recorded_classes(recorded, labels: Optional[np.ndarray]) -> list[str]:
    """The class names `generate` records beside labelled images (a JSON list in the file's
    attributes), when they are well formed and name every label; else none (labels by number)."""
    try:
        names = untrusted.loads(recorded) if isinstance(recorded, (str, bytes)) else recorded
    except ValueError:
        return []
    well_formed = isinstance(names, list) and 0 < len(names) <= MAX_CLASSES
    if not well_formed or not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) < len(names):
        return []
    return names if labels is not None and (not len(labels) or int(labels.max()) < len(names)) else []


def _npy_header(path: Path, archive, key: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype of `key` in an .npz, from its .npy header: nothing is decompressed."""
    with archive.open(key + ".npy") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(f)
    if dtype.hasobject:
        raise MnistgenError(
            f"{path}: '{key}' holds pickled Python objects, which mnistgen never loads: save it as a plain uint8 "
            "array (np.savez)"
        )
    return shape, dtype


@dataclass(frozen=True)
class _NpzLayout:
    """Where an .npz keeps its arrays: images, their labels (optional), and a test pair (optional)."""

    images: str
    labels: str
    test: Optional[tuple[str, str]]
    text: str  # for errors


NPZ_LAYOUTS = (
    _NpzLayout("images", "labels", None, GENERATE_LAYOUT),
    _NpzLayout("x_train", "y_train", ("x_test", "y_test"), KERAS_LAYOUT),
)


def _read_npz(path: Path, limit: Optional[int] = None) -> _Part:
    """generate's arrays, or Keras's mnist.npz (its x_test/y_test as the test split). Headers first
    (shape, dtype, bytes); np.load reads whole arrays, so the bytes are bounded."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            layout = next((lay for lay in NPZ_LAYOUTS if lay.images + ".npy" in members), None)
            if layout is None:
                keys = [name.removesuffix(".npy") for name in members]
                raise _no_layout(path, keys, [lay.text for lay in NPZ_LAYOUTS])
            shape, has_labels = _npz_pair(path, archive, members, layout.images, layout.labels, layout.text)
            test = None
            if layout.test and any(key + ".npy" in members for key in layout.test):
                absent = [key for key in layout.test if key + ".npy" not in members]
                if absent:
                    there = next(key for key in layout.test if key not in absent)
                    raise MnistgenError(
                        f"{path} has '{there}' but no '{absent[0]}': a test split needs both; save both, or neither"
                    )
                test = _npz_pair(path, archive, members, *layout.test, layout.text)[0]
        count = _kept(shape[0], limit)
        with np.load(path, allow_pickle=False) as arrays:  # each member by its checked name, never a bare "images"
            images = _read_images(path, layout.images, arrays[layout.images + ".npy"], count)
            found = arrays[layout.labels + ".npy"][:count] if has_labels else None
            labels = None if found is None else _labels(path, layout.labels, found)
            if test is not None:
                test_images, test_labels = layout.test
                test = Split(
                    _read_images(path, test_images, arrays[test_images + ".npy"], test[0]),
                    _labels(path, test_labels, arrays[test_labels + ".npy"]).astype(np.uint8),
                )
        classes = recorded_classes((npz_attrs(path) or {}).get("classes"), labels)
    except (RuntimeError, NotImplementedError) as exc:  # an encrypted member, a compression zipfile lacks
        raise MnistgenError(f"{path} cannot be opened ({exc}): save it again with np.savez") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as exc:
        raise MnistgenError(f"{path} is not a readable .npz ({exc.__class__.__name__}): write it again") from None
    return _Part(images, labels, path, classes=classes, test=test)


def _npz_pair(path: Path, archive, members: list, images: str, labels: str, layout: str) -> tuple[tuple, bool]:
    """Check the headers of an .npz's `images` and, when present, `labels` (before anything is
    read): the images' shape, and whether there are labels."""
    shape, dtype = _npy_header(path, archive, images)
    _check_images_shape(path, images, shape)
    _check_array(path, images, dtype, layout, int(np.prod(shape)) * dtype.itemsize)
    has_labels = labels + ".npy" in members
    if has_labels:
        label_shape, label_dtype = _npy_header(path, archive, labels)
        _check_labels_shape(path, label_shape, shape[0], labels)
        _check_array(path, labels, label_dtype, layout)
    return shape, has_labels


SHOWN_KEYS = 8  # array names an error lists before "..."
SHOWN_KEY_CHARS = 40  # characters of each
SHOWN_SOURCES = 3  # unlabelled sources a note names before "..."


def _no_layout(path: Path, keys: list[str], layouts: list[str]) -> MnistgenError:
    """A file with none of the layouts read: the arrays it holds (a few, each cut short) beside the
    layouts, so `x`/`y` or `data`/`label` can be renamed. Names are not guessed: `x` may be anything."""
    shown = [repr(key[:SHOWN_KEY_CHARS]) + ("..." if len(key) > SHOWN_KEY_CHARS else "") for key in keys]
    held = ", ".join(shown[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
    what = f"{held}, none of the arrays mnistgen reads" if keys else "no arrays"
    return MnistgenError(f"{path} holds {what}: save yours as {', or as '.join(layouts)}")


def npz_attrs(path: Path) -> Optional[dict]:
    """The settings `generate` records in an .npz (its "attrs", a JSON string) when small and well
    formed, else None: what the reader takes class names from and what --force/--resume compare."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            shape, dtype = _npy_header(path, archive, "attrs")
            if (
                archive.getinfo("attrs.npy").file_size > MAX_ATTRS_BYTES
                or dtype.itemsize * math.prod(shape) > MAX_ATTRS_BYTES
            ):
                return None
        with np.load(path, allow_pickle=False) as arrays:
            recorded = untrusted.loads(str(arrays["attrs.npy"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, MnistgenError):
        return None
    return recorded if isinstance(recorded, dict) else None


# -- pictures and folders -------------------------------------------------------------------------

EXIF_ORIENTATION = 0x0112  # the EXIF tag a camera or phone sets instead of rotating the pixels
EXIF_TURNS = range(2, 9)  # Orientation 2-8: flips and turns (exif_transpose undoes them); 1 is stored as shown
WIDE_INTEGER_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # Pillow's 16- and 32-bit integer greys
FLOAT_MODE = "F"  # 32-bit float grey (TIFF): [0, 1] when its values allow, else 0-255
MAX_16BIT = 2**16 - 1
MAX_32BIT = 2**31 - 1  # mode I is signed
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}  # an alpha channel; P, L and RGB may carry one transparent colour
KEYED_MODES = {"P", "L", "RGB"}  # transparency in im.info (a palette's alpha, or one transparent colour)
BLACK, WHITE = 0, MAX_PIXEL
FAINT_SHARE = 1 / 8  # a wide picture whose pixels stay below this share of its range is noted as nearly black

CONVERSIONS = (  # counts key -> what the note says, in the note's order
    ("resized", f"resized to {SIDE}x{SIDE}"),
    ("stretched", "not square, so stretched (pad them to squares first to keep their shape)"),
    ("grayscale", "converted to grayscale"),
    ("rescaled", f"rescaled from 16-bit, 32-bit or float pixels to 0-{MAX_PIXEL}"),
    (
        "faint",
        "nearly black once rescaled, no pixel above {faint_peak} (a 12-bit scan in a 16-bit file?): stretch the "
        "contrast to the full range first",
    ),
    ("upright", "turned upright (EXIF orientation)"),
    ("over_black", "composited over black (light content on transparency)"),
    ("over_white", "composited over white (dark content on transparency)"),
)


def _count(counts: dict, key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _read_picture(path: Path, counts: dict) -> np.ndarray:
    """One picture as uint8 (28, 28): turned upright (EXIF), made 8-bit grayscale (16-bit and float
    pixels rescaled, transparency composited), then resized, each counted in `counts`.
    Its header size is checked before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    counts.setdefault("suffixes", set()).add(path.suffix)  # for background_note's command
    bomb = MnistgenError(
        f"{path} declares a picture larger than {MAX_PICTURE_PIXELS:,} pixels or {MAX_PICTURE_SIDE:,} on a side (a "
        f"decompression bomb?): shrink it towards {SIDE}x{SIDE}, or remove it"
    )
    try:
        with warnings.catch_warnings():  # Pillow's metadata warnings (damaged TIFF tags) are not the user's to read:
            warnings.simplefilter("ignore")  # damaged pixels still fail below, in one line
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=PICTURE_FORMATS) as im:
                if im.size[0] * im.size[1] > MAX_PICTURE_PIXELS or max(im.size) > MAX_PICTURE_SIDE:
                    raise bomb
                im.load()
                im = _grayscale(path, _upright(im, counts), counts)
                if im.size != (SIDE, SIDE):
                    _count(counts, "resized")
                    if im.size[0] != im.size[1]:
                        _count(counts, "stretched")
                    im = im.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
                return np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise bomb from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        if _is_empty(path) or "truncated" in str(exc).lower():  # an interrupted copy: converting it cannot help
            what = "is empty (0 bytes)" if _is_empty(path) else "is truncated"
            raise MnistgenError(
                f"{path} {what}, as an interrupted copy or download leaves it: copy it again, or remove it"
            ) from None
        raise MnistgenError(
            f"{path} is not a readable image ({exc.__class__.__name__}): remove it or convert it to PNG"
        ) from None


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _upright(im, counts: dict):
    """The picture as a viewer shows it: EXIF Orientation 2-8 undone with `ImageOps.exif_transpose`.
    The pixels were decoded already, so damaged EXIF (anything failing here) leaves the picture as stored."""
    from PIL import ImageOps

    try:
        if im.getexif().get(EXIF_ORIENTATION) not in EXIF_TURNS:
            return im
        turned = ImageOps.exif_transpose(im)
    except Exception:  # Pillow's EXIF parser raises many kinds on damaged tags
        return im
    _count(counts, "upright")
    return turned


def _grayscale(path: Path, im, counts: dict):
    """The picture as 8-bit grey (mode L), by what it holds; an L picture without transparency is kept."""
    if im.mode in WIDE_INTEGER_MODES or im.mode == FLOAT_MODE:  # before transparency: 16-bit keys are ignored
        _count(counts, "rescaled")
        return _rescaled(path, im, counts)
    if im.mode in ALPHA_MODES or (im.mode in KEYED_MODES and "transparency" in im.info):
        composited = _composited(im, counts)
        if composited is not None:
            if im.mode != "L":
                _count(counts, "grayscale")
            return composited
    if im.mode != "L":
        _count(counts, "grayscale")
        im = im.convert("L")
    return im


def _rescaled(path: Path, im, counts: dict):
    """A 16-bit, 32-bit or float grey picture as 8-bit, by bit depth (Pillow's convert("L") clips at 255):
    I;16 pixels scale 0-65535 -> 0-255; mode I (32-bit signed) as 16-bit when its values fit 16 bits
    (older Pillow opens 16-bit PNGs as I), else 0-(2^31 - 1); float pixels are [0, 1] when none exceeds 1
    (the usual float convention), else 0-255. Negative values, NaN and floats above 255 are refused in one line.
    A picture whose brightest pixel is under FAINT_SHARE of that range comes out nearly black (a
    12-bit scan in a 16-bit PNG reaches 16 of 255; PNG's sBIT, which would say so, Pillow does not
    read): counted, with the brightest such pixel, for the note."""
    from PIL import Image

    values = np.asarray(im)  # (H, W) uint16, int32 or float32
    if im.mode == FLOAT_MODE:
        full = 1 if np.all(values <= 1) else MAX_PIXEL
    else:
        full = MAX_16BIT if im.mode != "I" or values.max() <= MAX_16BIT else MAX_32BIT
    bad = _first_bad(values, max(full, MAX_PIXEL), whole=False)
    if bad is not None:
        raise MnistgenError(
            f"{path} holds the pixel value {bad:.6g} ({im.mode} mode), which is not a brightness: save it as 8- or "
            "16-bit grayscale"
        )
    peak = values.max().item()
    if peak < full * FAINT_SHARE:
        _count(counts, "faint")
        if peak / full >= counts.get("faint_share", 0):  # the brightest of them, for the note
            shown = f"{peak:,}" if isinstance(peak, int) else f"{peak:.3g}"
            counts.update(faint_share=peak / full, faint_peak=f"{shown} of {full:,}")
    scaled = np.rint(values.astype(np.float32) * np.float32(MAX_PIXEL / full))
    return Image.fromarray(np.clip(scaled, 0, MAX_PIXEL).astype(np.uint8), "L")


def _composited(im, counts: dict):
    """A picture with transparency composited over black or white, as grey; None when it is fully opaque.
    The background is the one farther from the content's alpha-weighted mean grey, so the content stays
    visible: light strokes on transparency land on black (white on black, as MNIST), dark strokes on white
    (dark on white, as a viewer on a white page shows them). A tie, or nothing visible, takes black."""
    from PIL import Image, ImageChops, ImageStat

    rgba = im.convert("RGBA")  # applies a palette's alpha or a transparent colour
    alpha = rgba.getchannel("A")
    low, _ = alpha.getextrema()
    if low == MAX_PIXEL:
        return None
    grey = rgba.convert("L")
    covered = ImageStat.Stat(alpha).sum[0]  # sum of alpha (from the histogram: no arrays of the picture's size)
    weighted = ImageStat.Stat(ImageChops.multiply(grey, alpha)).sum[0]  # sum of grey * alpha / 255
    mean = weighted * MAX_PIXEL / covered if covered else BLACK
    background = WHITE if mean < MAX_PIXEL / 2 else BLACK
    _count(counts, "over_white" if background == WHITE else "over_black")
    return Image.composite(grey, Image.new("L", grey.size, background), alpha)


def conversion_note(counts: dict) -> list[str]:
    """The one summary of conversions, e.g. "812 images were resized to 28x28; 812 were converted to grayscale"."""
    parts = []
    for key, what in CONVERSIONS:
        n = counts.get(key, 0)
        if n:
            noun = ("image " if n == 1 else "images ") if not parts else ""
            parts.append(f"{n} {noun}{'was' if n == 1 else 'were'} {what.format_map(counts)}")
    return ["; ".join(parts)] if parts else []


LIGHT_BACKGROUND = 127  # an image whose background (data.background) is above this is drawn dark on light


def background_note(images: np.ndarray, counts: dict) -> list[str]:
    """One note when most images are dark on a light background (scanned paper; dark strokes on
    transparency, composited over white): models and judges trained on MNIST's light digits on
    black misread them. They are read as they are (no --invert: train, encode and evaluate read up
    to four sets, and the model card would have to record which were turned), and the note names
    the one-line fix, for the pictures' own suffixes. It says too that a model trained on such
    images reads them as they are: a user's own letters, trained on and then encoded, are not to
    be inverted for that model."""
    light = sum(  # a chunk at a time: the rings of 2,000,000 images would take 216 MB
        int(np.count_nonzero(data.background(images[start : start + READ_CHUNK]) > LIGHT_BACKGROUND))
        for start in range(0, len(images), READ_CHUNK)
    )
    if light * 2 <= len(images):
        return []
    over_white = counts.get("over_white", 0)
    composited = (
        f" (including {over_white:,} dark strokes on transparency, composited over white)" if over_white else ""
    )
    files = " ".join(f"*{suffix}" for suffix in sorted(counts.get("suffixes", ())) if suffix)
    how = f"ImageMagick, in place: mogrify -negate {files}; an array: 255 - images" if files else "255 - images"
    return [
        f"{light:,} of {len(images):,} images are dark on a light background{composited}, unlike MNIST's light "
        f"digits on black: models trained on MNIST (the shipped ones) misread them, so invert them for those ({how}); "
        "a model trained on images like these reads them as they are"
    ]


def _pictures_in(folder: Path, root: Path) -> list[Path]:
    """Picture files under `folder` (recursively), sorted; metadata skipped; anything else refused.
    A folder that cannot be listed is refused (a directory walk would skip it as if empty), and so is
    one that leads back to `root` or above it (a symbolic link to / would walk the whole disk), or
    holds more than MAX_FOLDER_ENTRIES entries."""
    if root.resolve().is_relative_to(folder.resolve()):
        raise MnistgenError(
            f"{folder} leads back to {root} or a folder above it (a symbolic link?): point it at a folder of its own"
        )
    try:
        entries = sorted(itertools.islice(folder.rglob("*"), MAX_FOLDER_ENTRIES + 1))  # one walk serves both checks
    except OSError as exc:
        raise MnistgenError(
            f"cannot read the folder {folder} ({exc.strerror}): make it readable, or move it out"
        ) from None
    if len(entries) > MAX_FOLDER_ENTRIES:
        raise MnistgenError(
            f"{folder} holds more than {MAX_FOLDER_ENTRIES:,} files and folders: mnistgen reads up to {MAX_IMAGES:,} "
            "images; split it"
        )
    seen = [p for p in entries if not _hidden(p, folder)]  # .Trash-1000, .thumbs/: skipped, readable or not
    for inner in (folder, *(p for p in seen if p.is_dir())):
        if not os.access(inner, os.R_OK | os.X_OK):
            raise MnistgenError(f"cannot read the folder {inner}: permission denied; make it readable, or move it out")
    return [p for p in seen if _is_file(p, root) and _is_picture(p, root)]


def _hidden(path: Path, folder: Path) -> bool:
    """Whether `path` is hidden, or lies in a hidden folder, below `folder` (.thumbs/x.png, ._x.png,
    .Trash-1000/...): a desktop's or a file system's, not the user's pictures."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def _is_file(path: Path, root: Path) -> bool:
    """True for a file, False for a folder; anything else is refused, as an unreadable picture is
    (skipped, it would leave an image out unsaid): a broken symbolic link, a pipe or a device."""
    if path.is_file():
        return True
    if path.is_dir():
        return False
    if path.is_symlink():
        raise MnistgenError(
            f"{path} in {root} is a broken symbolic link (to {os.readlink(path)}): remove it, or restore its target"
        )
    raise MnistgenError(f"{path} in {root} is not a regular file (a pipe or a device?): move it out of the folder")


def _is_picture(path: Path, root: Path) -> bool:
    """True for a picture, False for metadata beside pictures; anything else is refused."""
    if path.suffix.lower() in METADATA_SUFFIXES:
        return False
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        _refuse_idx_shards(path.parent)  # generate's IDX shards: a message of their own
        raise MnistgenError(
            f"{path} in {root} is not an image file: move it out of the folder, or pass the image files themselves"
        )
    return True


def _class_labels(
    root: Path, names: list[str], classes: Optional[list[str]], owner: Owner = Owner()
) -> tuple[dict, list[str]]:
    """Folder name -> label. With a model's `classes`: a class name, or a label index (generate writes
    OUT/<index>/). Without: digit names are their integer; otherwise sorted names -> 0, 1, ...
    Two folders for one label (7/ and 007/) are refused, not merged."""
    mapping, named = _folder_labels(root, names, classes, owner)
    first: dict = {}
    for name, label in mapping.items():
        if label is not None and first.setdefault(label, name) != name:
            raise MnistgenError(
                f"{root} has class folders {first[label]}/ and {name}/ for the same label {label}: merge them into "
                "one folder, or rename one"
            )
    return mapping, named


def model_label(name: str, classes: list[str]) -> Optional[int]:
    """A class name's label in a model of `classes`: its place among them, else a label index given
    as a number (generate writes OUT/<index>/), else None."""
    if name in classes:
        return classes.index(name)
    return int(name) if name.isdecimal() and int(name) < len(classes) else None


def _folder_labels(root: Path, names: list[str], classes: Optional[list[str]], owner: Owner) -> tuple[dict, list[str]]:
    if classes:
        mapping = {}
        for name in names:
            mapping[name] = None if name == UNLABELLED_DIR else model_label(name, classes)
            if mapping[name] is None and name != UNLABELLED_DIR:
                raise MnistgenError(
                    f"folder {root / name} is not a class of {owner.name} (classes: {data.shown(classes)}): rename it "
                    f"to one of them, or {owner.fix}"
                )
        return mapping, []
    if all(name.isdecimal() or name == UNLABELLED_DIR for name in names):
        too_big = [name for name in names if name.isdecimal() and int(name) >= MAX_CLASSES]
        if too_big:
            raise MnistgenError(
                f"folder {root / too_big[0]} names label {int(too_big[0])}: mnistgen handles labels 0-"
                f"{MAX_CLASSES - 1}; rename the folder"
            )
        return {name: None if name == UNLABELLED_DIR else int(name) for name in names}, []
    if len(names) > MAX_CLASSES:
        raise MnistgenError(f"{root} has {len(names)} class folders: mnistgen handles up to {MAX_CLASSES} classes")
    return {name: i for i, name in enumerate(names)}, list(names)


def _read_folder(
    root: Path,
    counts: dict,
    classes: Optional[list[str]],
    need_labels: bool,
    limit: Optional[int],
    in_turn: bool,
    owner: Owner = Owner(),
) -> _Part:
    """Pictures of a folder (class folders give labels). Only the `limit` kept are decoded: the
    first, or with `in_turn` (training's --limit) every class's first in turn (data.first_indices)."""
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if _is_file(p, root) and _is_picture(p, root)]
    if folders and loose:
        raise MnistgenError(
            f"{root} mixes pictures ({loose[0].name}, ...) with class folders ({folders[0].name}/, ...): move the "
            "pictures into a class folder"
        )
    per_folder = {p.name: _pictures_in(p, root) for p in folders}
    empty = [name for name, files in per_folder.items() if not files]
    if folders and empty:
        raise MnistgenError(f"{root / empty[0]} holds no image files: add pictures to it, or remove the folder")
    if not loose and not folders:
        raise MnistgenError(f"{root} holds no image files and no MNIST IDX files: pass {FORMS}")
    recorded = folder_classes(root, sorted(per_folder))  # generate's OUT/<index>/: by number, named by its record
    mapping, names = _class_labels(root, sorted(per_folder), None if recorded else classes, owner)
    names = recorded or names
    if need_labels and (not folders or any(v is None for v in mapping.values())):
        raise MnistgenError(
            f"{root} holds unlabelled pictures: only --model vae trains on them; sort them into {root}/<class>/ "
            "folders for a cvae or the classifier"
        )
    if need_labels and len(folders) < 2:
        raise MnistgenError(
            f"{root} has one class folder ({folders[0].name}/): a cvae or the classifier needs at least 2 classes; "
            "add another, or train --model vae"
        )
    files = loose + [p for name in sorted(per_folder) for p in per_folder[name]]
    labels = [None] * len(loose) + [mapping[name] for name in sorted(per_folder) for _ in per_folder[name]]
    _check_count(root, len(files))
    if limit is not None:
        by_class = in_turn and all(label is not None for label in labels)  # not loose pictures, nor unlabelled/
        keep = data.first_indices(np.array(labels), limit) if by_class else range(min(limit, len(files)))
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    pictures = np.stack([_read_picture(path, counts) for path in files]).reshape(-1, SIDE, SIDE)
    known = None if any(label is None for label in labels) else np.array(labels, dtype=np.int64)
    return _Part(pictures, known, root, [str(p) for p in files], names)


# -- one entry for every form -----------------------------------------------------------------------


def _read_path(
    path: Path,
    counts: dict,
    classes: Optional[list[str]] = None,
    need_labels: bool = False,
    limit: Optional[int] = None,
    pictures: bool = True,
    in_turn: bool = False,
    owner: Owner = Owner(),
) -> _Part:
    """Any form, by what it is: a directory (IDX or pictures), else by the file's first bytes."""
    if not path.exists():
        raise MnistgenError(f"{path} does not exist: pass {FORMS}")
    if path.is_dir():
        if _holds_idx(path):
            idx = read_idx_dir(path)
            record = record_beside(path)  # generate's IDX pair: its record
            labels = None if generated_unlabelled(record) else idx.train.labels.astype(np.int64)
            named = recorded_classes(record.get("classes"), labels)
            return _Part(idx.train.images, labels, path, classes=named, test=idx.test)
        return _read_folder(path, counts, classes, need_labels, limit, in_turn, owner)
    if not path.is_file():  # a FIFO or a device would block, or never end
        raise MnistgenError(
            f"{path} is not a regular file (a pipe or a device?): save the data to a file and pass that"
        )
    try:
        with open(path, "rb") as f:
            start = f.read(TAR_MAGIC_END)
    except OSError as exc:
        raise MnistgenError(f"cannot read {path}: {exc.strerror}") from None
    head = start[:4]
    if start[TAR_MAGIC_END - len(TAR_MAGIC) :] == TAR_MAGIC:
        raise MnistgenError(
            f"{path} is a tar archive (generate --format tar), which mnistgen writes for other loaders but does "
            "not read: generate --format hdf5 or png for a set that mnistgen reads"
        )
    if head[:2] == GZIP_MAGIC or int.from_bytes(head, "big") == IDX_IMAGES_MAGIC:
        return _read_idx_file(path)
    if head == HDF5_MAGIC:
        return _read_hdf5(path, limit)
    if head in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        return _read_npz(path, limit)
    if not pictures:
        raise MnistgenError(f"{path} is not an IDX, HDF5 (.mat, .h5) or NPZ file: pass {FORMS}")
    return _Part(_read_picture(path, counts)[None], None, path, [str(path)])


def _refuse_idx_shards(directory: Path) -> None:
    """generate --format idx --shard writes train.shard-00000-of-00008-images-idx3-ubyte.gz, ...: one
    set per shard, not a folder of pictures (whose refusal, "not an image file: move it out", misleads).
    Looked for only where that refusal is about to be made, so a folder that reads costs no extra listing."""
    shards = sorted(directory.glob(f"train{SHARD_TAGS}-images?idx3-ubyte*"))
    if shards:
        raise MnistgenError(
            f"{directory} holds {len(shards)} IDX shards of generate --shard: pass their images files themselves "
            f"(e.g. {shards[0]}; train --data takes one), or generate the set as one IDX pair (without --shard)"
        )


def mnist_cached() -> bool:
    """Whether the MNIST cache (`load` without a path) holds the training files."""
    return _holds_idx(data.cache_dir() / data.MNIST_SUBDIR)


def _holds_idx(directory: Path) -> bool:
    """Whether `directory` holds IDX training images, MNIST's or EMNIST's (else it is read as pictures)."""
    return _idx_prefix(directory) is not None


def load(
    data_path: Optional[Path] = None, download: bool = False, need_labels: bool = False, limit: Optional[int] = None
) -> Dataset:
    """Training data from `data_path` (any form in this module's docstring), or MNIST from the cache
    (downloading it if asked). `need_labels` (a cvae, the classifier) refuses unlabelled data and a
    single class. Only an IDX directory with the t10k (or EMNIST's test) pair and Keras's mnist.npz
    have a test split: see `data.holdout`.
    `limit`: a folder of pictures decodes only the images data.first_images(limit) would keep
    (other forms are read whole; take data.first_images of the result either way)."""
    if data_path is None:
        cached = data.cache_dir() / data.MNIST_SUBDIR
        if download:
            data.fetch_mnist(cached)
        if not mnist_cached():
            raise MnistgenError(
                f"MNIST is not in the cache ({cached}): pass --data DIR (the four IDX files) or --download"
            )
        return read_idx_dir(cached)
    path = Path(data_path)
    counts: dict = {}
    in_folder = path.is_dir() and not _holds_idx(path)  # pictures: only what the limit keeps is decoded
    folder_limit = limit if in_folder else None  # HDF5 and NPZ read only a prefix, not every class in turn
    part = _read_path(path, counts, need_labels=need_labels, pictures=False, limit=folder_limit, in_turn=True)
    if part.labels is None:
        if need_labels:
            raise MnistgenError(
                f"{path} has no labels: only --model vae trains without them; pass labelled data for a cvae or the "
                "classifier"
            )
        labels = np.zeros(len(part.images), np.uint8)
    else:  # every reader gave labels 0..MAX_CLASSES-1
        if need_labels and not in_folder and len(np.unique(part.labels)) < 2:  # a folder's class folders are counted
            raise MnistgenError(
                f"{path} has one class only: a cvae or the classifier needs at least 2; add images of another class, "
                "or train --model vae"
            )
        labels = part.labels.astype(np.uint8)
    train = Split(np.ascontiguousarray(part.images, dtype=np.uint8), labels)
    notes = conversion_note(counts) + background_note(train.images, counts)
    return Dataset(train, part.test, str(path), part.classes, part.labels is not None, notes)


def _as_model_labels(part: _Part, classes: Optional[list[str]], owner: Owner = Owner()) -> _Part:
    """A source that records its class names (generate's outputs, in their files or manifests) read
    for a model of `classes`: its labels by name, as class folders are (a name of the model's, or a
    label index); a name the model lacks among the labels it holds is refused. Compared by number,
    another model's "zero" would be read as that model's 9."""
    if not classes or not part.classes or part.labels is None or part.classes == list(classes):
        return part
    lookup = np.zeros(len(part.classes), dtype=np.int64)
    for label in np.unique(part.labels):  # only the classes it holds: a name it merely records is no matter
        name = part.classes[label]
        found = model_label(name, classes)
        if found is None:
            raise MnistgenError(
                f"{part.source} holds images of class {name!r}, which is not a class of {owner.name} (classes: "
                f"{data.shown(classes)}): {owner.fix}"
            )
        lookup[label] = found
    return replace(part, labels=lookup[part.labels], classes=list(classes))


def read(
    paths,
    limit: Optional[int] = None,
    classes: Optional[list[str]] = None,
    owner: Owner = Owner(),
    labels_given: bool = False,
) -> Images:
    """Read and concatenate every source, in order; `limit` keeps the first N images. With `classes`
    (a model card's, or the judge's), labels are read by class name: ImageFolder folder names must be
    among them (or be label indices), and so must the names generate recorded for its outputs; a
    refusal names `owner`. `labels_given`: the caller labels the images itself, so no note that
    an unlabelled source drops the others' labels."""
    parts: list[_Part] = []
    counts: dict = {}
    for path in map(Path, paths):
        left = None if limit is None else limit - sum(len(p.images) for p in parts)
        if left is not None and left <= 0:
            break
        parts.append(_as_model_labels(_read_path(path, counts, classes, limit=left, owner=owner), classes, owner))
    if not parts:
        raise MnistgenError(f"no images given: pass {FORMS}")
    images = parts[0].images if len(parts) == 1 else np.concatenate([p.images for p in parts])  # one: no copy
    labels = None if any(p.labels is None for p in parts) else np.concatenate([p.labels for p in parts])
    names = [n for p in parts for n in p.image_names()]
    if limit is not None:
        images, names = images[:limit], names[:limit]
        labels = None if labels is None else labels[:limit]
    dropped = [] if labels_given else _unlabelled_note(parts)
    notes = conversion_note(counts) + dropped + background_note(images, counts)
    named = list(classes or next((p.classes for p in parts if p.classes), []))
    return Images(images, labels, names, notes, named)


def _unlabelled_note(parts: list[_Part]) -> list[str]:
    """Labels are all or nothing: one unlabelled source drops the others' labels too, so say which."""
    unlabelled = [str(p.source) for p in parts if p.labels is None]
    if not unlabelled or len(unlabelled) == len(parts):
        return []
    shown = ", ".join(unlabelled[:SHOWN_SOURCES]) + (", ..." if len(unlabelled) > SHOWN_SOURCES else "")
    return [
        f"{shown} {'has' if len(unlabelled) == 1 else 'have'} no labels, so no image is labelled (the other sources' "
        "labels are dropped too): read the labelled sources on their own"
    ]
