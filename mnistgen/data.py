"""Data in memory and MNIST's cache: `Split`/`Dataset`, the [-1, 1] scaling, held-out splits,
downloading MNIST into the cache (md5-checked) and writing IDX files.

Reading any input from disk (IDX, .mat, ImageFolder, HDF5, NPZ, pictures) is `sources.py`'s
job; this module reads nothing the user points at. Images are uint8 (N, 28, 28);
`to_unit_range` scales them to the [-1, 1] the model is trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistgen import atomic
from mnistgen.config import IMAGE_SIZE
from mnistgen.errors import MnistgenError

CACHE_ENV = "MNISTGEN_DATA"
DEFAULT_CACHE = Path("~/.cache/mnistgen")
MNIST_SUBDIR = "mnist"

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class MnistFile:
    stem: str  # e.g. "train-images-idx3-ubyte"
    gz_md5: str  # md5 of the official .gz
    raw_md5: str  # md5 of the uncompressed bytes (recompressed copies keep this one)


MNIST_FILES = {
    "train_images": MnistFile(
        "train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"
    ),
    "train_labels": MnistFile(
        "train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"
    ),
    "test_images": MnistFile(
        "t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"
    ),
    "test_labels": MnistFile(
        "t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"
    ),
}


@dataclass
class Split:
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # uint8 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> Split:
        return Split(self.images[index], self.labels[index])

    def fingerprint(self) -> str:
        """sha256 of the images and labels, in order: the same data gives the same string."""
        digest = hashlib.sha256(np.ascontiguousarray(self.images, np.uint8).tobytes())
        digest.update(np.ascontiguousarray(self.labels, np.int64).tobytes())
        return digest.hexdigest()

    @staticmethod
    def empty() -> Split:
        return Split(np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.zeros(0, np.uint8))  # (0, 28, 28), (0,)


@dataclass
class Dataset:
    train: Split
    test: Split | None  # None when the source has none (all but IDX directories, Keras's npz): see `holdout`
    source: str  # where it was read from, for the model card
    classes: list[str] = field(default_factory=list)  # label names from the source (ImageFolder); [] = 0, 1, ...
    labelled: bool = True  # False for a flat folder of pictures: labels are all 0 and mean nothing
    notes: list[str] = field(default_factory=list)  # for the user (stderr): conversions made; a light background


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


CACHE_FIX = f"set ${CACHE_ENV} to a folder you can write"


def cache_problem() -> str | None:
    """Why the cache cannot take downloads and exported decoders (None when it can): it, or the part of
    its path that exists, is a file or cannot be written. Seen as it is used, this surfaced as a slow
    eager decoder (NotADirectoryError under `inference/`) or a failed download, not as the cache's fault."""
    root = cache_dir()
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is None:  # nothing of the path exists (a relative path's "." always does)
        return None
    if existing == root and not root.is_dir():
        return f"the cache {root} is a file, not a folder"
    if not existing.is_dir():
        return f"the cache {root} cannot be made: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the cache {root} cannot be written (no write permission on {existing})"
    return None


def first_images(split: Split, count: int) -> Split:
    """The first `count` images (--limit). A split listed class by class (an ImageFolder is read
    folder by folder) gives the first image of every class in turn instead, so a limit keeps every
    class rather than the first few; either way the images keep the source's order."""
    return split.subset(first_indices(split.labels, count))


def first_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """Which images `first_images` keeps, from the labels alone (so a folder of pictures can decode
    only those): ascending indices."""
    labels = np.asarray(labels)
    if count >= len(labels) or np.any(labels[1:] < labels[:-1]):  # all of it, or not class by class: the first
        return np.arange(min(count, len(labels)))
    turn = np.empty(len(labels), np.int64)  # each image's place within its class
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        turn[where] = np.arange(len(where))
    chosen = np.lexsort((np.arange(len(labels)), turn))[:count]  # by turn, then source order
    return np.sort(chosen)


SHOWN_CLASSES = 12  # class names listed in a message before "..."


def label_names(classes, count: int) -> list[str]:
    """The names of labels 0..count-1: the source's class names (an ImageFolder's folders, a model
    card's), else each label's own number."""
    named = list(classes or [])
    return named[:count] + [str(i) for i in range(len(named), count)]


def shown(names) -> str:
    names = list(names)
    return ", ".join(names[:SHOWN_CLASSES]) + (", ..." if len(names) > SHOWN_CLASSES else "")


SAME_CLASSES_FIX = "use sets with the same classes (class folders named alike)"


def check_same_classes(labels, classes, what: str, reference, reference_what: str, fix: str = SAME_CLASSES_FIX) -> None:
    """Refuse labelled images whose labels name other classes than `reference` does: compared by
    index, they would pair unrelated classes silently. A side without names (labels by number: IDX
    files, digit folders, --class-names given to one side only) names nothing to contradict."""
    used = np.unique(np.asarray(labels))
    if not len(used) or not classes or not reference:
        return
    count = int(used.max()) + 1
    mine, theirs = label_names(classes, count), label_names(reference, max(count, len(reference)))
    if any(mine[label] != theirs[label] for label in used):
        raise MnistgenError(
            f"{what} ({shown(mine[label] for label in used)}) and {reference_what} ({shown(theirs)}) name different "
            f"classes: {fix}"
        )


def one_hot(labels, num_classes: int) -> np.ndarray:
    """int labels (B,) -> float32 (B, num_classes)."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1], as the tutorial scales them."""
    return (images.astype(np.float32) / 127.5 - 1.0)[:, None, :, :]


def background(images: np.ndarray) -> np.ndarray:
    """Each image's background, (N,) in the images' dtype: the lower median of its outermost ring of
    pixels (images (N, ..., H, W)), a value the ring holds (the mean of the middle two of a half-black,
    half-white ring would be a grey of neither). MNIST's is black; a set drawn dark on light has a light one."""
    rows = images[..., [0, -1], :].reshape(len(images), -1)
    cols = images[..., 1:-1, [0, -1]].reshape(len(images), -1)
    ring = np.concatenate([rows, cols], axis=1)
    middle = (ring.shape[1] - 1) // 2
    return np.partition(ring, middle, axis=1)[:, middle]


def shift_images(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each uint8 image (N, 28, 28) by its own random offset of up to `max_shift` pixels
    each way, filling with its background (`background`: black fill drew dark frames round
    light-background pictures): the cheap augmentation small training sets need."""
    if max_shift <= 0 or not len(images):
        return images
    n, side = len(images), images.shape[-1]
    fill = background(images)
    padded = np.empty((n, side + 2 * max_shift, side + 2 * max_shift), images.dtype)
    padded[:] = fill[:, None, None]
    padded[:, max_shift:-max_shift, max_shift:-max_shift] = images  # (N, 28 + 2s, 28 + 2s)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(side)  # (N, 28)
    cols = dx[:, None] + np.arange(side)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


VAL_FRACTION = 0.1  # held out for validation (early stopping), per label
TEST_FRACTION = 0.1  # held out for testing when the source has no test split, per label


@dataclass(frozen=True)
class Holdout:
    """What `holdout` kept for training and what it held out, with the record for the model card."""

    train: Split
    val: Split
    test: Split
    val_index: np.ndarray  # int64 positions in the split given to `holdout`
    test_index: np.ndarray
    record: dict  # counts, fractions, seed: JSON for the card's "training"


def holdout(split: Split, val: float = VAL_FRACTION, test: float = TEST_FRACTION, seed: int = 0) -> Holdout:
    """Hold out a seeded share of `split`, stratified by label: `val` and `test` of each label's images.

    Per label with n images: round(n * fraction) each, but at least 1 for every non-zero fraction
    while at least one image of that label stays for training (a label with 1 image is only
    trained on; with 2, one trains and one is tested). The three parts are disjoint, keep the
    split's order, and depend only on the labels, the fractions and `seed`. Pass val=0 or test=0
    for a two-way split. Pure: no Paddle, nothing read or written.
    """
    for name, value in (("val", val), ("test", test)):
        if not 0.0 <= value < 1.0:
            raise MnistgenError(f"held-out {name} fraction {value} is out of range: use 0 <= fraction < 1")
    if val + test >= 1.0:
        raise MnistgenError(f"held-out fractions {val} + {test} leave nothing to train on: keep their sum below 1")
    rng = np.random.default_rng(seed)
    val_parts, test_parts = [], []
    for label in np.unique(split.labels):
        members = rng.permutation(np.flatnonzero(split.labels == label))
        n_test = _share(len(members), test, spare=len(members) - 1)
        n_val = _share(len(members), val, spare=len(members) - 1 - n_test)
        test_parts.append(members[:n_test])
        val_parts.append(members[n_test : n_test + n_val])
    test_index = np.sort(np.concatenate(test_parts or [np.zeros(0, np.int64)])).astype(np.int64)
    val_index = np.sort(np.concatenate(val_parts or [np.zeros(0, np.int64)])).astype(np.int64)
    keep = np.ones(len(split), bool)
    keep[test_index] = keep[val_index] = False
    train = split.subset(np.flatnonzero(keep))
    record = {
        "seed": seed,
        "val_fraction": val,
        "test_fraction": test,
        "stratified_by": "label",
        "train_images": len(train),
        "val_images": len(val_index),
        "test_images": len(test_index),
    }
    return Holdout(train, split.subset(val_index), split.subset(test_index), val_index, test_index, record)


def _share(n: int, fraction: float, spare: int) -> int:
    """round(n * fraction), at least 1 if fraction > 0, never more than `spare` images."""
    if fraction <= 0:
        return 0
    return max(0, min(max(1, round(n * fraction)), spare))


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def verify(name: str, payload: bytes, spec: MnistFile) -> bytes:
    """Check a download against the official .gz md5 or the md5 of its uncompressed bytes."""
    if md5_of(payload) == spec.gz_md5:
        return payload
    try:
        inner = gzip.decompress(payload) if payload[:2] == GZIP_MAGIC else payload
    except (EOFError, OSError, zlib.error):
        raise MnistgenError(f"download of {name} is truncated (bad gzip): try again or pass --data DIR") from None
    if md5_of(inner) != spec.raw_md5:
        raise MnistgenError(f"download of {name} has the wrong checksum: try another time or pass --data DIR")
    return payload


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 (fixed https mirrors)
        return response.read()


def fetch_mnist(target: Path) -> Path:
    """Download the four MNIST files into `target`, verifying each md5; skip the ones present."""
    target.mkdir(parents=True, exist_ok=True)
    for spec in MNIST_FILES.values():
        name = spec.stem + ".gz"
        dest = target / name
        if dest.is_file():
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                payload = verify(name, _download(mirror + name), spec)
                break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                errors.append(f"{mirror}: {exc}")
        else:
            raise MnistgenError(
                f"cannot download MNIST ({len(errors)} mirrors failed; offline?): pass --data DIR with the four IDX "
                "files"
            )
        atomic.write_bytes(dest, payload)
    return target


def idx_header(magic: int, dims) -> bytes:
    """The IDX header: big-endian magic number, then each dimension."""
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 images (N, 28, 28) or labels (N,) as an IDX file (gzipped if the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = IDX_IMAGES_MAGIC if array.ndim == 3 else IDX_LABELS_MAGIC
    payload = idx_header(magic, array.shape) + array.tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    atomic.write_bytes(path, payload)
