"""Images to encode, from wherever users keep them: PNG/JPEG files and folders (an ImageFolder
layout gives labels), an MNIST IDX pair, an HDF5 file written by `generate`, the tutorial's .mat.

Everything comes back as uint8 (N, 28, 28) with optional labels and a name per image. Images
that are not 28x28 grayscale are converted (RGB -> L, resized with antialiasing) and counted in
`notes`; an unreadable file is refused with its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen import data
from mnistgen.errors import MnistgenError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SIDE = 28


@dataclass
class Images:
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: Optional[np.ndarray]  # int64 (N,), or None when no source gave labels
    names: list[str]  # where each image came from: a path, or file[index]
    notes: list[str] = field(default_factory=list)  # conversions made, for the user


def _read_picture(path: Path, notes: dict) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "L":
                notes["converted to grayscale"] = notes.get("converted to grayscale", 0) + 1
                im = im.convert("L")
            if im.size != (SIDE, SIDE):
                notes[f"resized to {SIDE}x{SIDE}"] = notes.get(f"resized to {SIDE}x{SIDE}", 0) + 1
                im = im.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MnistgenError(
            f"{path} is not a readable image ({exc.__class__.__name__}): remove it or convert it to PNG"
        ) from None


def _folder_label(path: Path, root: Path) -> Optional[int]:
    parent = path.parent
    return int(parent.name) if parent != root and parent.name.isdigit() else None


def _read_folder(root: Path, notes: dict) -> tuple[list, list, list]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    pictures, labels, names = [], [], []
    for path in files:
        if path.suffix.lower() in (".jsonl", ".json", ".csv", ".txt", ".md"):
            continue  # metadata beside images (generate writes metadata.jsonl)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise MnistgenError(
                f"{path} in {root} is not an image file: move it out of the folder, or pass the image files themselves"
            )
        pictures.append(_read_picture(path, notes))
        labels.append(_folder_label(path, root))
        names.append(str(path))
    if not pictures:
        raise MnistgenError(
            f"{root} holds no image files: pass PNG files, a folder of them, an IDX file, or an HDF5 file"
        )
    return pictures, labels, names


def _read_idx(path: Path) -> Images:
    images = data.read_idx(path, data.IDX_IMAGES_MAGIC)
    name = path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    labels_path = path.with_name(name)
    labels = (
        data.read_idx(labels_path, data.IDX_LABELS_MAGIC).astype(np.int64)
        if labels_path != path and labels_path.is_file()
        else None
    )
    if labels is not None and len(labels) != len(images):
        raise MnistgenError(
            f"{path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels: the pair does "
            "not match"
        )
    return Images(images, labels, [f"{path}[{i}]" for i in range(len(images))])


def _read_hdf5(path: Path) -> Images:
    import h5py

    with h5py.File(path, "r") as f:
        if "images" in f:  # written by mnistgen generate
            images = np.asarray(f["images"], dtype=np.uint8)
            labels = np.asarray(f["labels"], dtype=np.int64) if "labels" in f else None
            return Images(images, labels, [f"{path}[{i}]" for i in range(len(images))])
    dataset = data.read_mat(path)  # the tutorial's train.mat
    return Images(
        dataset.train.images, dataset.train.labels.astype(np.int64), [f"{path}[{i}]" for i in range(len(dataset.train))]
    )


def read(paths: list[Path], limit: Optional[int] = None) -> Images:
    """Read and concatenate every source, in order; `limit` keeps the first N images."""
    parts: list[Images] = []
    notes: dict = {}
    for path in map(Path, paths):
        if not path.exists():
            raise MnistgenError(
                f"{path} does not exist: pass PNG files, folders of them, an IDX images file or an HDF5 file"
            )
        if path.is_dir():
            pictures, labels, names = _read_folder(path, notes)
            known = None if any(label is None for label in labels) else np.array(labels, dtype=np.int64)
            parts.append(Images(np.stack(pictures), known, names))
            continue
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == data.GZIP_MAGIC or int.from_bytes(head, "big") == data.IDX_IMAGES_MAGIC:
            parts.append(_read_idx(path))
        elif head == data.HDF5_MAGIC:
            parts.append(_read_hdf5(path))
        else:
            parts.append(Images(_read_picture(path, notes)[None], None, [str(path)]))
    images = np.concatenate([p.images for p in parts])
    labels = None if any(p.labels is None for p in parts) else np.concatenate([p.labels for p in parts])
    names = [n for p in parts for n in p.names]
    if limit is not None:
        images, names = images[:limit], names[:limit]
        labels = None if labels is None else labels[:limit]
    return Images(images, labels, names, [f"{count} image(s) {what}" for what, count in notes.items()])
