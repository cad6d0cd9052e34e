"""Input files a stranger made to hurt the reader (sources.py): each is refused in one line, or read
for what it claims to be, before anything unbounded is read or anything outside it is opened.

Every file is built in tmp_path with h5py, numpy, zipfile or plain bytes. A FIFO stands for "a file
that would block the reader": a test that reaches it would hang, so each check is proved to come
before any open.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mnistgen import sources
from mnistgen.cli import app
from mnistgen.errors import MnistgenError

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("no_hang")  # FIFOs: a regressed guard would block for ever
SAVE_INSIDE = "mnistgen reads only data stored inside the file; save the arrays into it (h5py's defaults)"
GENERATE_LAYOUT = "images uint8 (N, 28, 28) and labels (N,), as generate writes"


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def refused(path: Path) -> str:
    with pytest.raises(MnistgenError) as caught:
        sources.read([path])
    return str(caught.value)


def test_hdf5_data_stored_in_a_fifo_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "pixels.fifo"
    os.mkfifo(fifo)
    path = tmp_path / "external.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", (2, 28, 28), "uint8", external=[(str(fifo), 0, 2 * 28 * 28)])
    assert refused(path) == f"{path}: 'images' is stored in other files: {SAVE_INSIDE}"


def test_hdf5_links_are_refused_before_they_are_followed(tmp_path):
    """A link to another file, or a soft link through a group that is one: either reads outside."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 28, 28), np.uint8))
    external, soft = tmp_path / "linked.h5", tmp_path / "soft.h5"
    with h5py.File(external, "w") as f:
        f["images"] = h5py.ExternalLink(str(other), "images")
    with h5py.File(soft, "w") as f:
        f["elsewhere"] = h5py.ExternalLink(str(other), "/")
        f["images"] = h5py.SoftLink("/elsewhere/images")
    for path in (external, soft):
        assert refused(path) == f"{path}: 'images' is a link, not the array itself: {SAVE_INSIDE}"


def test_hdf5_chunk_that_decompresses_to_more_than_the_bound_is_refused(tmp_path):
    path = tmp_path / "chunky.h5"
    rows = sources.MAX_CHUNK_BYTES // (28 * 28) + 1
    with h5py.File(path, "w") as f:
        f.create_dataset("images", (1, 28, 28), "uint8", maxshape=(None, 28, 28), chunks=(rows, 28, 28))
    assert refused(path) == (
        f"{path}: 'images' is stored in chunks of {rows * 28 * 28:,} bytes, more than mnistgen decompresses at once "
        f"({sources.MAX_CHUNK_BYTES:,}): save it again with smaller chunks (h5py's chunks=True)"
    )


def test_hdf5_dataset_without_a_shape_is_refused(tmp_path):
    path = tmp_path / "null.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=h5py.Empty("uint8"))
    assert refused(path) == f"{path}: 'images' is an empty HDF5 dataset (no shape): mnistgen reads {GENERATE_LAYOUT}"


def test_deeply_nested_class_names_are_ignored_not_a_crash(tmp_path):
    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((2, 28, 28), np.uint8))
        f.create_dataset("labels", data=np.array([0, 1], np.uint8))
        f.attrs["classes"] = "[" * 100_000 + "]" * 100_000
    images = sources.read([path])
    assert images.labels.tolist() == [0, 1] and images.classes == []


def test_npz_reads_the_members_whose_headers_were_checked(tmp_path):
    """np.load(...)["images"] prefers a bare member "images" to "images.npy": a second, unchecked
    array (here larger, and with other labels) must never be what is read."""
    path = tmp_path / "shadowed.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", npy_bytes(np.full((3, 28, 28), 7, np.uint8)))
        archive.writestr("labels.npy", npy_bytes(np.array([1, 2, 3], np.uint8)))
        archive.writestr("images", npy_bytes(np.zeros((50, 28, 28), np.uint8)))
        archive.writestr("labels", npy_bytes(np.array([9, 9], np.uint8)))
        archive.writestr("attrs", npy_bytes(np.array('{"classes": ["a", "b", "c", "d"]}')))
    images = sources.read([path])
    assert images.images.shape == (3, 28, 28) and int(images.images.max()) == 7
    assert images.labels.tolist() == [1, 2, 3] and images.classes == []


def test_npz_attrs_declaring_a_huge_array_are_not_read(tmp_path):
    path = tmp_path / "attrs.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", npy_bytes(np.zeros((1, 28, 28), np.uint8)))
        with archive.open("attrs.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<U1", "fortran_order": False, "shape": (1 << 50,)})
    assert sources.npz_attrs(path) is None
    assert sources.read([path]).images.shape == (1, 28, 28)


def test_a_postscript_file_named_png_is_never_handed_to_ghostscript(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    evil = folder / "evil.png"
    evil.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    assert refused(folder) == f"{evil} is not a readable image (UnidentifiedImageError): remove it or convert it to PNG"


def test_a_long_strip_of_pixels_is_refused_before_it_is_resized(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("L", (sources.MAX_PICTURE_SIDE + 1, 1)).save(path)
    assert refused(path) == (
        f"{path} declares a picture larger than {sources.MAX_PICTURE_PIXELS:,} pixels or "
        f"{sources.MAX_PICTURE_SIDE:,} on a side (a decompression bomb?): shrink it towards 28x28, or remove it"
    )


def test_a_class_folder_linking_back_above_the_root_is_not_walked(tmp_path):
    root = tmp_path / "digits"
    (root / "0").mkdir(parents=True)
    Image.new("L", (28, 28)).save(root / "0" / "a.png")
    (root / "1").symlink_to(tmp_path)  # walking it would walk digits/ again, and everything beside it
    result = runner.invoke(app, ["encode", str(root), "--model", "cvae-2d", "-o", str(tmp_path / "z.csv")])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {root / '1'} leads back to {root} or a folder above it (a symbolic link?): point it at a folder of "
        "its own"
    )
    assert not (tmp_path / "z.csv").exists()


def test_a_class_folder_linked_elsewhere_is_still_read(tmp_path):
    elsewhere = tmp_path / "shared" / "ones"
    elsewhere.mkdir(parents=True)
    Image.new("L", (28, 28), 255).save(elsewhere / "b.png")
    root = tmp_path / "digits"
    (root / "0").mkdir(parents=True)
    Image.new("L", (28, 28)).save(root / "0" / "a.png")
    (root / "1").symlink_to(elsewhere)
    images = sources.read([root])
    assert images.labels.tolist() == [0, 1] and int(images.images[1].min()) == 255
