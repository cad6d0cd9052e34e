"""MNIST on disk: IDX files (gzipped or not), the tutorial's `train.mat`, the cache, downloads.

Everything is checked before it is used: IDX magic numbers and sizes, image/label counts,
download checksums. A bad file is refused with one line that names it; nothing is ever
half-loaded. Images come back as uint8 (N, 28, 28); `to_unit_range` scales them to the
[-1, 1] the model is trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistgen import atomic
from mnistgen.errors import MnistgenError

CACHE_ENV = "MNISTGEN_DATA"
DEFAULT_CACHE = Path("~/.cache/mnistgen")
MNIST_SUBDIR = "mnist"

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"
HDF5_MAGIC = b"\x89HDF"

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


@dataclass
class Dataset:
    train: Split
    test: Split | None  # None when the source has no test split (the tutorial's train.mat)
    source: str  # where it was read from, for the model card


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def one_hot(labels, num_classes: int) -> np.ndarray:
    """int labels (B,) -> float32 (B, num_classes)."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [-1, 1], as the tutorial scales them."""
    return (images.astype(np.float32) / 127.5 - 1.0)[:, None, :, :]


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MnistgenError(f"cannot read {path}: {exc.strerror}") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error):
            raise MnistgenError(f"{path} is a truncated or corrupt gzip file: download it again") from None
    return raw


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (images: (N, rows, cols); labels: (N,)) and check its header."""
    raw = _read_bytes(path)
    ndim = 3 if magic == IDX_IMAGES_MAGIC else 1
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise MnistgenError(f"{path} is too short to be an IDX file: download it again")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise MnistgenError(f"{path} has IDX magic number {found}, expected {magic}: is it the right file?")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header_len + int(np.prod(dims))
    if len(raw) != expected:
        raise MnistgenError(
            f"{path} holds {len(raw)} bytes but its header promises {expected}: the file is truncated; download it "
            "again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _read_split(directory: Path, images_key: str, labels_key: str) -> Split | None:
    images_path = _find(directory, MNIST_FILES[images_key].stem)
    labels_path = _find(directory, MNIST_FILES[labels_key].stem)
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = MNIST_FILES[images_key if images_path is None else labels_key].stem
        raise MnistgenError(f"{directory} has no {missing}[.gz]: it needs both the images and the labels file")
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise MnistgenError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images: mnistgen needs 28x28")
    if len(images) != len(labels):
        raise MnistgenError(
            f"{images_path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels: the pair "
            "does not match"
        )
    return Split(images, labels)


def read_idx_dir(directory: Path) -> Dataset:
    train = _read_split(directory, "train_images", "train_labels")
    if train is None:
        raise MnistgenError(
            f"{directory} has no MNIST training files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]): "
            "point --data at the directory that holds them"
        )
    test = _read_split(directory, "test_images", "test_labels")
    return Dataset(train, test, str(directory))


def read_mat(path: Path) -> Dataset:
    """The tutorial's train.mat: HDF5 with `image` (N, 1, 28, 28) in [0, 1], stored transposed, and one-hot `label`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "image" not in f or "label" not in f:
                raise MnistgenError(
                    f"{path} has no 'image' and 'label' datasets: it is not the tutorial's train.mat layout"
                )
            image = np.asarray(f["image"], dtype=np.float32)
            label = np.asarray(f["label"])
    except OSError as exc:
        raise MnistgenError(f"cannot read {path} as HDF5: {exc}") from None
    image = image.reshape(-1, 28, 28).transpose(0, 2, 1)  # MATLAB stores column-major
    label = label.reshape(label.shape[0], -1) if label.shape[0] == len(image) else label.reshape(-1, len(image)).T
    if len(label) != len(image):
        raise MnistgenError(
            f"{path} has {len(image)} images but {len(label)} labels: the file does not match the tutorial's layout"
        )
    images = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    labels = label.argmax(axis=1).astype(np.uint8)
    return Dataset(Split(images, labels), None, str(path))


def load(data: Path | None = None, download: bool = False) -> Dataset:
    """Read MNIST from `data` (IDX directory or .mat file), or from the cache (downloading if asked)."""
    if data is not None:
        data = Path(data)
        if data.is_dir():
            return read_idx_dir(data)
        if data.is_file():
            with open(data, "rb") as f:
                head = f.read(4)
            if head == HDF5_MAGIC:
                return read_mat(data)
            raise MnistgenError(
                f"{data} is neither a directory of IDX files nor an HDF5 .mat file: pass the directory that holds "
                "the four MNIST files"
            )
        raise MnistgenError(f"--data {data} does not exist: pass the directory that holds the MNIST IDX files")
    cached = cache_dir() / MNIST_SUBDIR
    if download:
        fetch_mnist(cached)
    if _find(cached, MNIST_FILES["train_images"].stem) is None:
        raise MnistgenError(f"MNIST is not in the cache ({cached}): pass --data DIR (the four IDX files) or --download")
    return read_idx_dir(cached)


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
