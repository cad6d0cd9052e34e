"""The one input reader (sources.py) and the held-out split (data.holdout).

Every input is built in tmp_path from the fixture's IDX files with PIL, h5py or numpy; no
binaries are committed. Bad inputs are refused with one exact line, and nothing is written.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mnistgen import data, export, sources
from mnistgen.cli import app
from mnistgen.errors import MnistgenError

runner = CliRunner()
EXAMPLE = Path(__file__).parent.parent / "examples" / "make_imagefolder.py"


def image_folder(root: Path, dataset, per_class: int, names: dict | None = None, skip: int = 0) -> Path:
    """ROOT/<name>/<index>.png from `per_class` fixture images of each digit in `names` (the first,
    after `skip`): the ImageFolder every reader test builds (test_classes too)."""
    names = names or {d: str(d) for d in range(10)}
    for digit, name in names.items():
        (root / name).mkdir(parents=True)
        for i in np.flatnonzero(dataset.train.labels == digit)[skip : skip + per_class]:
            Image.fromarray(dataset.train.images[i]).save(root / name / f"{i:05d}.png")
    return root


def flat_folder(root: Path, dataset, count: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(dataset.train.images[i]).save(root / f"{i:05d}.png")
    return root


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares width x height 8-bit grey pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 4)  # four rows of zeros: the rest is missing
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def npy_header_only(path: Path, key: str, shape: tuple, descr: str = "|u1") -> Path:
    """An .npz whose `key` member declares `shape` but holds no data."""
    with zipfile.ZipFile(path, "w") as archive, archive.open(key + ".npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return path


# -- each reader --------------------------------------------------------------------------------------


def test_image_folder_with_digit_names(tmp_path, dataset):
    root = image_folder(tmp_path / "digits", dataset, 3, {7: "7", 2: "2", 0: "0"})
    got = sources.load(root, need_labels=True)
    assert got.train.images.shape == (9, 28, 28) and got.train.images.dtype == np.uint8
    assert got.train.labels.tolist() == [0, 0, 0, 2, 2, 2, 7, 7, 7]  # folders sorted, digit names are their label
    assert got.classes == [] and got.labelled and got.test is None and got.notes == []
    first_seven = np.flatnonzero(dataset.train.labels == 7)[0]
    assert np.array_equal(got.train.images[6], dataset.train.images[first_seven])


def test_image_folder_with_named_classes(tmp_path, dataset):
    root = image_folder(tmp_path / "named", dataset, 2, {3: "cat", 1: "ant", 5: "bee"})
    got = sources.load(root)
    assert got.classes == ["ant", "bee", "cat"]  # sorted names, labels 0, 1, 2
    assert got.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    found = sources.read([root])
    assert found.classes == ["ant", "bee", "cat"] and found.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert found.names[0] == str(root / "ant" / f"{np.flatnonzero(dataset.train.labels == 1)[0]:05d}.png")


def test_flat_folder_is_unlabelled(tmp_path, dataset):
    root = flat_folder(tmp_path / "flat", dataset, 5)
    got = sources.load(root)
    assert not got.labelled and got.train.labels.tolist() == [0] * 5 and got.test is None
    assert np.array_equal(got.train.images, dataset.train.images[:5])
    assert sources.read([root]).labels is None


def test_an_unlabelled_source_among_labelled_ones_is_named(tmp_path, dataset):
    labelled = image_folder(tmp_path / "digits", dataset, 1, {7: "7", 2: "2"})
    loose = flat_folder(tmp_path / "flat", dataset, 2) / "00000.png"
    found = sources.read([labelled, loose])
    assert found.labels is None and len(found.images) == 3
    assert found.notes == [
        f"{loose} has no labels, so no image is labelled (the other sources' labels are dropped too): read the "
        "labelled sources on their own"
    ]
    assert sources.read([labelled]).notes == [] and sources.read([loose]).notes == []
    assert sources.read([labelled, loose], labels_given=True).notes == []  # encode --labels labels them all


def test_files_generate_writes(tmp_path, dataset):
    images, labels = dataset.train.images[:40], dataset.train.labels[:40]
    latents = np.zeros((40, 2), np.float32)
    for name, writer in (("g.h5", export.Hdf5Writer), ("g.npz", export.NpzWriter)):
        with writer(tmp_path / name, 40, 2, {"model": "m", "seed": 1}) as out:
            out.write(images, labels, latents, 0)
        got = sources.load(tmp_path / name)
        assert np.array_equal(got.train.images, images) and np.array_equal(got.train.labels, labels)
        assert got.test is None and got.source == str(tmp_path / name)
        found = sources.read([tmp_path / name], limit=5)
        assert found.labels.tolist() == labels[:5].tolist() and found.names[4] == f"{tmp_path / name}[4]"


def test_keras_mnist_npz_keeps_its_test_split(tmp_path, dataset):
    """Keras's mnist.npz (x_train, y_train, x_test, y_test): the train split, and the test split
    used as an IDX directory's t10k pair is; every header is checked before anything is read."""
    keras = tmp_path / "mnist.npz"
    train, test = dataset.train, dataset.test
    np.savez(keras, x_train=train.images, y_train=train.labels, x_test=test.images, y_test=test.labels)
    got = sources.load(keras, need_labels=True)
    assert np.array_equal(got.train.images, train.images) and np.array_equal(got.train.labels, train.labels)
    assert np.array_equal(got.test.images, test.images) and np.array_equal(got.test.labels, test.labels)
    assert got.notes == [] and got.labelled
    found = sources.read([keras], limit=5)  # encode and evaluate --images read the training images
    assert np.array_equal(found.images, train.images[:5]) and found.labels.tolist() == train.labels[:5].tolist()
    no_test = tmp_path / "no_test.npz"
    np.savez(no_test, x_train=train.images[:8], y_train=train.labels[:8])
    assert sources.load(no_test).test is None
    half = tmp_path / "half.npz"
    np.savez(half, x_train=train.images[:8], y_train=train.labels[:8], x_test=test.images[:4])
    huge = tmp_path / "huge.npz"  # x_test's header declares 3,000,000 images: refused before x_train is read
    with zipfile.ZipFile(huge, "w") as archive:
        for key, value in (("x_train", train.images[:8]), ("y_train", train.labels[:8]), ("y_test", test.labels)):
            with archive.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, value)
        with archive.open("x_test.npy", "w") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "|u1", "fortran_order": False, "shape": (3_000_000, 28, 28)}
            )
    short = tmp_path / "short.npz"
    np.savez(short, x_train=train.images[:8], y_train=train.labels[:7])
    for path, message in (
        (half, f"{half} has 'x_test' but no 'y_test': a test split needs both; save both, or neither"),
        (
            huge,
            f"{huge} declares 3,000,000 images, more than mnistgen reads at once (2,000,000): split it into smaller "
            "files",
        ),
        (short, f"{short}: 'y_train' has shape (7,) for 8 images: expected one label per image"),
    ):
        with pytest.raises(MnistgenError) as caught:
            sources.load(path)
        assert str(caught.value) == message


def test_an_array_file_in_no_layout_lists_the_arrays_it_holds(tmp_path, dataset):
    """x/y or data/label: the error names what the file holds (a few names, each cut short) and the
    layouts read, so the user knows what to rename; no name is guessed."""
    import h5py

    images, labels = dataset.train.images[:4], dataset.train.labels[:4]
    xy = tmp_path / "xy.npz"
    np.savez(xy, x=images, y=labels)
    many = tmp_path / "many.npz"
    np.savez(many, **{f"a{i}": labels for i in range(9)}, **{"n" * 50: labels})
    h5 = tmp_path / "dl.h5"
    with h5py.File(h5, "w") as f:
        f["data"], f["label"] = images, labels
    empty = tmp_path / "empty.npz"
    np.savez(empty)  # a zip of nothing starts with its end record: it is still an .npz, not a picture
    generate = "images uint8 (N, 28, 28) and labels (N,), as generate writes"
    keras = "x_train (N, 28, 28) and y_train (N,), with x_test and y_test as a test split, as Keras's mnist.npz"
    npz = f"{generate}, or as {keras}"
    mat = "'image' (N, 1, 28, 28) in [0, 1] and one-hot 'label' (N, classes), as the tutorial's train.mat"
    cut = "'" + "n" * 40 + "'..."
    for path, message in (
        (xy, f"{xy} holds 'x', 'y', none of the arrays mnistgen reads: save yours as {npz}"),
        (
            many,
            f"{many} holds 'a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', ..., none of the arrays mnistgen reads: "
            f"save yours as {npz}",
        ),
        (h5, f"{h5} holds 'data', 'label', none of the arrays mnistgen reads: save yours as {generate}, or as {mat}"),
        (empty, f"{empty} holds no arrays: save yours as {npz}"),
    ):
        for reader in (sources.read, sources.load):
            with pytest.raises(MnistgenError) as caught:
                reader([path]) if reader is sources.read else reader(path)
            assert str(caught.value) == message
    long = tmp_path / "long.npz"
    np.savez(long, **{"n" * 50: labels})
    with pytest.raises(MnistgenError) as caught:
        sources.read([long])
    assert str(caught.value) == f"{long} holds {cut}, none of the arrays mnistgen reads: save yours as {npz}"


def test_idx_directory_keeps_its_test_split(mnist_dir, dataset):
    got = sources.load(mnist_dir)
    assert len(got.train) == 1000 and len(got.test) == 200 and got.classes == [] and got.labelled
    assert np.array_equal(sources.read([mnist_dir]).images, dataset.train.images)


def emnist_dir(root: Path, dataset, prefix: str = "emnist-letters-") -> Path:
    """EMNIST's own file names (labels 1-10 here: the letters' 1-26 have no label 0), with its test pair
    and the mapping file EMNIST ships beside them."""
    root.mkdir(exist_ok=True)
    data.write_idx(root / f"{prefix}train-images-idx3-ubyte.gz", dataset.train.images[:60])
    data.write_idx(root / f"{prefix}train-labels-idx1-ubyte.gz", dataset.train.labels[:60] + 1)
    data.write_idx(root / f"{prefix}test-images-idx3-ubyte.gz", dataset.test.images[:20])
    data.write_idx(root / f"{prefix}test-labels-idx1-ubyte.gz", dataset.test.labels[:20] + 1)
    (root / f"{prefix}mapping.txt").write_text("1 65 97\n")
    (root / f"._{prefix}train-images-idx3-ubyte.gz").write_bytes(b"\x00\x05\x16\x07")  # macOS's, on a USB stick
    return root


def test_emnist_named_files_are_read_as_one_idx_set(tmp_path, dataset):
    root = emnist_dir(tmp_path / "emnist", dataset)
    got = sources.load(root, need_labels=True)
    assert np.array_equal(got.train.images, dataset.train.images[:60]) and got.train.labels.min() == 1
    assert (
        np.array_equal(got.test.images, dataset.test.images[:20])
        and got.test.labels.tolist()[:3] == (dataset.test.labels[:3] + 1).tolist()
    )
    assert np.array_equal(sources.read([root]).images, dataset.train.images[:60])
    data.write_idx(root / "emnist-digits-train-images-idx3-ubyte.gz", dataset.train.images[:5])
    with pytest.raises(MnistgenError) as caught:
        sources.load(root)
    assert str(caught.value) == (
        f"{root} holds 2 IDX training sets (emnist-digits-train-images-idx3-ubyte.gz, "
        "emnist-letters-train-images-idx3-ubyte.gz): point --data at a folder holding one of them, or pass its "
        "images file"
    )
    single = sources.load(root / "emnist-letters-train-images-idx3-ubyte.gz")  # its labels file found beside it
    assert single.train.labels.tolist() == (dataset.train.labels[:60] + 1).tolist()
    (root / "emnist-digits-train-images-idx3-ubyte.gz").unlink()
    (root / "emnist-letters-test-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MnistgenError) as caught:
        sources.load(root)
    assert str(caught.value) == (
        f"{root} has no emnist-letters-test-labels-idx1-ubyte[.gz]: it needs both the images and the labels file"
    )


def test_class_names_name_labels_without_images_too(tmp_path, dataset):
    """Labels 1-10 (EMNIST's letters start at 1): 10 names are one short, and the error says why."""
    root = emnist_dir(tmp_path / "emnist", dataset)
    names = ",".join("abcdefghij")
    argv = ["train", "--model", "cvae", "--data", str(root), "--class-names", names, "--out", str(tmp_path / "r")]
    result = runner.invoke(app, [*argv, "--processes", "1", "-q"])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: --class-names has 10 names but the data has 11 classes (labels 0-10; label 0 has no images but still "
        "needs a name): give one name per label, in order\n"
    )
    few = tmp_path / "few.npz"  # labels 0-4: a model knows MNIST's ten at least
    np.savez(few, images=dataset.train.images[:10], labels=np.arange(10) % 5)
    argv = ["train", "--data", str(few), "--class-names", "a,b,c,d,e", "--out", str(tmp_path / "f"), "-q"]
    result = runner.invoke(app, [*argv, "--processes", "1"])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: --class-names has 5 names but the data has 10 classes (labels 0-9; labels 5, 6, 7, 8, 9 have no "
        "images but still need names): give one name per label, in order\n"
    )


def test_conversion_is_summed_up_in_one_note(tmp_path, dataset):
    root = tmp_path / "colour"
    (root / "4").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(dataset.train.images[i]).convert("RGB").resize((56, 56)).save(root / "4" / f"{i}.png")
    Image.fromarray(dataset.train.images[3]).save(root / "4" / "3.png")  # already 28x28 grey: not counted
    got = sources.load(root)
    assert got.notes == ["3 images were resized to 28x28; 3 were converted to grayscale"]
    with Image.open(root / "4" / "0.png") as im:  # the conversion encode always made: L, then Lanczos
        expected = np.asarray(im.convert("L").resize((28, 28), Image.Resampling.LANCZOS))
    assert np.array_equal(got.train.images[0], expected)
    assert sources.read([root]).notes == got.notes
    assert sources.conversion_note({"grayscale": 1}) == ["1 image was converted to grayscale"]
    assert sources.conversion_note({}) == []


# -- pictures read as a viewer shows them: 16-bit, EXIF-rotated, transparent --------------------------

ORIENTATION = 0x0112  # the EXIF tag
TURNED_CLOCKWISE = 6  # Orientation 6: a viewer turns the stored pixels 90 degrees clockwise


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def digit(dataset, label: int) -> np.ndarray:
    """The first fixture image of `label`: uint8 (28, 28), white strokes on black."""
    return dataset.train.images[np.flatnonzero(dataset.train.labels == label)[0]]


def sideways_jpeg(path: Path, upright: np.ndarray, exif: bytes | None = None) -> np.ndarray:
    """A JPEG storing `upright` turned counter-clockwise, with EXIF Orientation 6 (or the raw `exif` given):
    a viewer shows it upright. Returns the stored (sideways) pixels."""
    stored = np.ascontiguousarray(np.rot90(upright))  # (28, 28), turned counter-clockwise
    if exif is None:
        tags = Image.Exif()
        tags[ORIENTATION] = TURNED_CLOCKWISE
        exif = tags.tobytes()
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    return stored


def exif_with_bad_pointer() -> bytes:
    """EXIF with Orientation 6 and a GPS IFD pointer far past its end: Pillow warns while reading it."""
    short, long = 3, 4  # TIFF field types
    entries = [(ORIENTATION, short, 1, struct.pack("<HH", TURNED_CLOCKWISE, 0)), (0x8825, long, 1, b"\xff\xff\xff\x00")]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", *e[:3]) + e[3] for e in entries)
    return b"Exif\x00\x00II" + struct.pack("<HI", 42, 8) + ifd + struct.pack("<I", 0)


def test_16_bit_and_float_pictures_are_rescaled_not_clipped(tmp_path, dataset):
    root = tmp_path / "wide"
    root.mkdir()
    two = digit(dataset, 2)
    Image.fromarray(two.astype(np.uint16) * 257).save(root / "a16.png")  # 0-65535: MNIST's digit x 257
    with Image.open(root / "a16.png") as im:
        assert im.mode == "I;16"  # what Pillow opens a 16-bit grey PNG as; convert("L") clipped it to 0/255
    Image.fromarray(two.astype(np.int32) * 257).save(root / "b32.tif")  # mode I holding 16-bit values
    Image.fromarray(two.astype(np.float32) / 255).save(root / "c_unit.tif")  # mode F in [0, 1]
    Image.fromarray(two.astype(np.float32)).save(root / "d_bytes.tif")  # mode F in 0-255
    got = sources.read([root])
    for image, name in zip(got.images, got.names):
        assert np.abs(image.astype(int) - two).max() <= 1, name
    assert got.notes == ["4 images were rescaled from 16-bit, 32-bit or float pixels to 0-255"]
    negative = tmp_path / "negative.tif"
    Image.fromarray(two.astype(np.int32) - 1).save(negative)
    with pytest.raises(MnistgenError) as caught:
        sources.read([negative])
    assert str(caught.value) == (
        f"{negative} holds the pixel value -1 (I mode), which is not a brightness: save it as 8- or 16-bit grayscale"
    )


def test_a_12_bit_scan_in_a_16_bit_png_is_noted_as_nearly_black(tmp_path, dataset):
    two = digit(dataset, 2)
    Image.fromarray((two.astype(np.uint32) * 4095 // 255).astype(np.uint16)).save(tmp_path / "scan12.png")  # 0-4095
    Image.fromarray((two.astype(np.uint32) * 2000 // 255).astype(np.uint16)).save(tmp_path / "dimmer.png")
    got = sources.read([tmp_path / "scan12.png", tmp_path / "dimmer.png"])
    assert got.images.max() == 16  # what was read: scaled by 16-bit's range, as PNG says nothing else
    assert got.notes == [
        "2 images were rescaled from 16-bit, 32-bit or float pixels to 0-255; 2 were nearly black once rescaled, no "
        "pixel above 4,095 of 65,535 (a 12-bit scan in a 16-bit file?): stretch the contrast to the full range first"
    ]


def test_exif_orientation_is_applied(tmp_path, dataset):
    one = digit(dataset, 1)  # a stroke: upright and sideways hardly correlate
    stored = sideways_jpeg(tmp_path / "phone.jpg", one)
    got = sources.read([tmp_path / "phone.jpg"])
    assert correlation(got.images[0], one) > 0.9  # upright, as a viewer shows it
    assert correlation(got.images[0], stored) < 0.3  # not the stored, sideways pixels
    assert got.notes == ["1 image was turned upright (EXIF orientation)"]
    Image.fromarray(one).save(tmp_path / "plain.jpg", quality=95)  # no EXIF: as stored, no note
    plain = sources.read([tmp_path / "plain.jpg"])
    assert correlation(plain.images[0], one) > 0.9 and plain.notes == []


def test_damaged_exif_leaves_the_picture_readable(tmp_path, dataset, monkeypatch):
    one = digit(dataset, 1)
    damaged = tmp_path / "damaged.jpg"
    stored = sideways_jpeg(damaged, one, exif_with_bad_pointer())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "Corrupt EXIF data" warning stays inside the reader
        got = sources.read([damaged])
    assert correlation(got.images[0], one) > 0.9  # the Orientation tag itself was readable

    def fails(*args, **kwargs):
        raise SyntaxError("damaged EXIF")  # what older Pillows raise on some damaged tags

    monkeypatch.setattr("PIL.ImageOps.exif_transpose", fails)
    as_stored = sources.read([damaged])  # no traceback, no error: the pixels are fine, shown as stored
    assert correlation(as_stored.images[0], stored) > 0.9 and as_stored.notes == []


def test_transparent_pictures_show_their_content(tmp_path, dataset):
    root = tmp_path / "transparent"
    root.mkdir()
    three = digit(dataset, 3)
    zeros, full = np.zeros_like(three), np.full_like(three, 255)
    rgba = {  # colour channels, alpha: (28, 28, 4)
        "a_dark.png": (zeros, three),  # black ink, the digit in alpha: a viewer shows it dark on white
        "b_light.png": (full, three),  # white ink, the digit in alpha: white on black, as MNIST
        "c_opaque.png": (three, full),  # alpha 255 everywhere: nothing to composite
    }
    for name, (colour, alpha) in rgba.items():
        Image.fromarray(np.stack([colour, colour, colour, alpha], axis=-1), "RGBA").save(root / name)
    got = sources.read([root])
    dark, light, opaque = got.images
    assert dark.std() > 50 and correlation(dark, three) < -0.99  # visible: the digit, dark on white
    assert np.abs(dark.astype(int) - (255 - three.astype(int))).max() <= 1
    assert np.abs(light.astype(int) - three).max() <= 1  # white on black, matching the digit
    assert np.array_equal(opaque, three)
    assert got.notes == [
        "3 images were converted to grayscale; 1 was composited over black (light content on transparency); "
        "1 was composited over white (dark content on transparency)"
    ]


def test_every_conversion_is_named_in_the_one_note(tmp_path, dataset):
    root = tmp_path / "mixed"
    (root / "7").mkdir(parents=True)
    seven = digit(dataset, 7)
    big = np.asarray(Image.fromarray(seven).resize((56, 56), Image.Resampling.LANCZOS))  # (56, 56)
    Image.fromarray(big.astype(np.uint16) * 257).save(root / "7" / "a.png")  # 16-bit, resized
    sideways_jpeg(root / "7" / "b.jpg", seven)  # EXIF
    light = np.stack([np.full_like(seven, 255)] * 3 + [seven], axis=-1)  # (28, 28, 4): white ink, alpha = digit
    Image.fromarray(light, "RGBA").save(root / "7" / "c.png")
    got = sources.load(root)
    assert got.notes == [
        "1 image was resized to 28x28; 1 was converted to grayscale; 1 was rescaled from 16-bit, 32-bit or float "
        "pixels to 0-255; 1 was turned upright (EXIF orientation); 1 was composited over black (light content on "
        "transparency)"
    ]
    assert all(correlation(image, seven) > 0.9 for image in got.train.images)
    assert sources.conversion_note({"over_white": 2, "upright": 1}) == [
        "1 image was turned upright (EXIF orientation); 2 were composited over white (dark content on transparency)"
    ]


LIGHT_NOTE = (
    "images are dark on a light background{also}, unlike MNIST's light digits on black: models trained on MNIST (the "
    "shipped ones) misread them, so invert them for those ({how}); a model trained on images like these reads them "
    "as they are"
)
PNG_FIX = "ImageMagick, in place: mogrify -negate *.png; an array: 255 - images"
ARRAY_FIX = "255 - images"  # an .npz or IDX set: no pictures to run mogrify on


def test_light_backgrounds_are_noted_once(tmp_path, dataset):
    """Scanned-paper digits (dark on white), and dark strokes on transparency (composited over
    white): one note when most images are drawn so, whatever read them; none for a few."""
    paper = tmp_path / "paper"
    image_folder(paper, dataset, 3, {1: "1", 2: "2"})
    for picture in sorted(paper.glob("*/*.png"))[1:]:  # 5 of 6 inverted
        with Image.open(picture) as im:
            Image.fromarray(255 - np.asarray(im)).save(picture)
    note = "5 of 6 " + LIGHT_NOTE.format(also="", how=PNG_FIX)
    assert sources.load(paper).notes == [note] and sources.read([paper]).notes == [note]
    assert sources.read([paper], limit=2).notes == []  # the first two: one each way, not most
    np.savez(tmp_path / "paper.npz", images=255 - dataset.train.images[:10])
    assert sources.load(tmp_path / "paper.npz").notes == ["10 of 10 " + LIGHT_NOTE.format(also="", how=ARRAY_FIX)]
    assert sources.load(tmp_path / "paper.npz").train.images[0, 0, 0] == 255  # read as it is, not turned
    ink = tmp_path / "ink"
    ink.mkdir()
    for i in range(3):  # black ink, the digit in alpha: a viewer shows it dark on white
        zeros = np.zeros_like(dataset.train.images[i])
        Image.fromarray(np.stack([zeros] * 3 + [dataset.train.images[i]], axis=-1), "RGBA").save(ink / f"{i}.png")
    assert sources.read([ink]).notes == [
        "3 images were converted to grayscale; 3 were composited over white (dark content on transparency)",
        "3 of 3 "
        + LIGHT_NOTE.format(also=" (including 3 dark strokes on transparency, composited over white)", how=PNG_FIX),
    ]
    assert sources.load(image_folder(tmp_path / "mnist", dataset, 3, {1: "1"})).notes == []


def test_the_light_background_note_names_the_pictures_own_suffixes(tmp_path, dataset):
    """Dark letters on paper as JPEGs: the note's command was "mogrify -negate *.png", which
    matches none of them."""
    paper = tmp_path / "paper"
    image_folder(paper, dataset, 2, {1: "A", 2: "letter É"})
    for i, picture in enumerate(sorted(paper.glob("*/*.png"))):
        with Image.open(picture) as im:
            turned = Image.fromarray(255 - np.asarray(im))
        if i % 2:
            turned.save(picture.with_suffix(".jpg"))
            picture.unlink()
        else:
            turned.save(picture)
    how = "ImageMagick, in place: mogrify -negate *.jpg *.png; an array: 255 - images"
    assert sources.load(paper).notes[-1] == "4 of 4 " + LIGHT_NOTE.format(also="", how=how)


def test_an_empty_or_cut_picture_is_named_as_such(tmp_path, dataset):
    """A 0-byte file or a JPEG cut short (an interrupted copy) read "not a readable image
    (UnidentifiedImageError): ... convert it to PNG", which cannot help."""
    folder = image_folder(tmp_path / "set", dataset, 2, {1: "A", 2: "B"})
    (folder / "B" / "empty.jpg").write_bytes(b"")
    with pytest.raises(MnistgenError) as caught:
        sources.load(folder, need_labels=True)
    assert str(caught.value) == (
        f"{folder / 'B' / 'empty.jpg'} is empty (0 bytes), as an interrupted copy or download leaves it: copy it "
        "again, or remove it"
    )
    whole = io.BytesIO()
    Image.fromarray(dataset.train.images[0]).save(whole, "JPEG")
    (folder / "B" / "empty.jpg").write_bytes(whole.getvalue()[:200])
    with pytest.raises(MnistgenError) as caught:
        sources.read([folder / "B" / "empty.jpg"])
    assert str(caught.value).startswith(f"{folder / 'B' / 'empty.jpg'} is truncated, as an interrupted copy")


def test_the_light_background_note_counts_only_the_images_kept(tmp_path, dataset):
    """An IDX set is read whole and cut to --limit after: the note counts what is kept."""
    import gzip

    inverted = tmp_path / "inverted"
    inverted.mkdir()
    images, labels = 255 - dataset.train.images[:20], dataset.train.labels[:20].astype(np.uint8)
    with gzip.open(inverted / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    with gzip.open(inverted / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())
    assert sources.read([inverted], limit=5).notes == ["5 of 5 " + LIGHT_NOTE.format(also="", how=ARRAY_FIX)]


def test_evaluate_and_encode_say_the_images_are_light_on_dark(tmp_path, dataset, tiny_judge, tiny_cvae, mnist_dir):
    inverted = tmp_path / "inverted.npz"
    np.savez(inverted, images=255 - dataset.test.images[:20], labels=dataset.test.labels[:20])
    note = "note: 20 of 20 " + LIGHT_NOTE.format(also="", how=ARRAY_FIX) + "\n"
    result = runner.invoke(
        app, ["evaluate", "--images", str(inverted), "--judge", str(tiny_judge), "--data", str(mnist_dir)]
    )
    assert result.exit_code == 0, result.output
    assert note in result.stderr and json.loads(result.stdout)["notes"] == [note[6:-1]]
    result = runner.invoke(app, ["encode", str(inverted), "--model", str(tiny_cvae), "-o", str(tmp_path / "z.csv")])
    assert result.exit_code == 0, result.output
    assert result.stderr == note


def test_hidden_folders_are_skipped_at_any_depth(tmp_path, dataset):
    """A desktop's thumbnails (1/.thumbs/x.png), a trash or snapshot folder inside a class folder:
    not the user's pictures, nor labelled by the class they sit in; anything in them is left alone."""
    root = image_folder(tmp_path / "f", dataset, 2, {0: "0", 1: "1"})
    for inner in ("1/.thumbs", "1/more/.snapshot/daily", "0/.Trash-1000/files"):
        (root / inner).mkdir(parents=True)
        Image.fromarray(dataset.train.images[0]).save(root / inner / "x.png")
        (root / inner / "Thumbs.db").write_bytes(b"\x00")  # not a picture: refused if it were looked at
    Image.fromarray(dataset.train.images[1]).save(root / "1" / "more" / "kept.png")  # a visible subfolder counts
    (root / "1" / "._00003.png").write_bytes(b"\x00\x05\x16\x07")  # macOS's resource fork beside a picture
    got = sources.load(root, need_labels=True)
    assert got.train.labels.tolist() == [0, 0, 1, 1, 1] and got.notes == []


def test_model_classes_name_the_folders(tmp_path, dataset):
    root = image_folder(tmp_path / "f", dataset, 1, {1: "Trouser", 0: "0"})
    found = sources.read([root], classes=["T-shirt/top", "Trouser", "Pullover"])
    assert found.labels.tolist() == [0, 1]  # "0" is a label index (generate writes OUT/<index>/), "Trouser" a name
    (root / "Sneaker").mkdir()
    Image.fromarray(dataset.train.images[0]).save(root / "Sneaker" / "a.png")
    with pytest.raises(MnistgenError) as caught:
        sources.read([root], classes=["T-shirt/top", "Trouser", "Pullover"])
    assert str(caught.value) == (
        f"folder {root / 'Sneaker'} is not a class of the model (classes: T-shirt/top, Trouser, Pullover): "
        "rename it to one of them, or pass --labels"
    )


# -- the held-out split ---------------------------------------------------------------------------------


def test_holdout_is_stratified_disjoint_and_seeded(dataset):
    split = dataset.train
    held = data.holdout(split, seed=7)
    train_index = np.setdiff1d(np.arange(len(split)), np.concatenate([held.val_index, held.test_index]))
    assert len(np.intersect1d(held.val_index, held.test_index)) == 0  # disjoint
    assert len(held.train) + len(held.val) + len(held.test) == len(split)
    assert np.array_equal(held.train.images, split.images[train_index])  # never the training images themselves
    for label in range(10):
        n = int((split.labels == label).sum())
        assert int((held.test.labels == label).sum()) == round(n * 0.1)  # stratified: 10% of every label
        assert int((held.val.labels == label).sum()) == round(n * 0.1)
    assert held.record == {
        "seed": 7,
        "val_fraction": 0.1,
        "test_fraction": 0.1,
        "stratified_by": "label",
        "train_images": 800,
        "val_images": 100,
        "test_images": 100,
    }
    again = data.holdout(split, seed=7)
    assert np.array_equal(again.test_index, held.test_index) and np.array_equal(again.val_index, held.val_index)
    assert not np.array_equal(data.holdout(split, seed=8).test_index, held.test_index)


def test_holdout_keeps_one_per_class_where_it_can():
    labels = np.array([0] * 1 + [1] * 2 + [2] * 3 + [3] * 30, np.uint8)
    split = data.Split(np.zeros((len(labels), 28, 28), np.uint8), labels)
    held = data.holdout(split, seed=0)
    count = {part: np.bincount(getattr(held, part).labels, minlength=4).tolist() for part in ("train", "val", "test")}
    assert count == {"train": [1, 1, 1, 24], "val": [0, 0, 1, 3], "test": [0, 1, 1, 3]}
    two_way = data.holdout(split, val=0.0, test=0.2, seed=0)
    assert len(two_way.val) == 0 and len(two_way.test) == 8
    with pytest.raises(MnistgenError, match=r"held-out fractions 0.5 \+ 0.5 leave nothing to train on"):
        data.holdout(split, val=0.5, test=0.5)


# -- train on an ImageFolder ---------------------------------------------------------------------------


def test_train_on_image_folder_records_class_names(tmp_path, dataset):
    root = image_folder(tmp_path / "named", dataset, 20, {3: "cat", 1: "ant", 5: "bee"})
    out = tmp_path / "run"
    argv = ["train", "--model", "cvae", "--data", str(root), "--epochs", "1", "--channels", "8", "--out", str(out)]
    result = runner.invoke(app, [*argv, "--limit", "45", "--processes", "1", "--no-classifier", "-q"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    assert card["classes"] == ["ant", "bee", "cat"] and card["config"]["num_classes"] == 3
    held = card["training"]["holdout"]  # 10% validation, 10% test: an ImageFolder has no test split
    assert held["train_images"] + held["val_images"] + held["test_images"] == 45 and held["test"] == "held out"
    assert card["training"]["train_images"] == held["train_images"] and card["training"]["data"] == str(root)


def test_a_vae_on_unlabelled_pictures_claims_no_classes(tmp_path, dataset):
    """A flat folder has no labels: the card names no classes, no per-label centroid or prior (the
    zeros the reader fills in are no digit "0"), and no companion."""
    root, out = flat_folder(tmp_path / "flat", dataset, 40), tmp_path / "run"
    argv = ["train", "--model", "vae", "--data", str(root), "--epochs", "1", "--channels", "4", "--out", str(out)]
    result = runner.invoke(app, [*argv, "--processes", "1", "-q"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "model.json").read_text())
    assert card["classes"] == [] and card["training"]["companion"] is False
    stats = card["latent_stats"]
    assert stats["centroids"] == {} and list(stats["fitted"]) == ["all"] and list(stats["mixture"]) == ["all"]
    walk = runner.invoke(app, ["interpolate", "--model", str(out), "--digits", "0,0", "-o", str(tmp_path / "w.gif")])
    assert walk.exit_code == 1
    assert walk.stderr == (
        "Error: model run is an unconditional VAE: its training images had no labels to walk between; pass --points, "
        "--images or --grid\n"
    )


def test_a_limit_decodes_only_the_pictures_it_keeps(tmp_path, dataset):
    """--limit N reads N pictures of a folder, not all of them: a bad file past the limit is never
    opened, and the conversion note counts what was read; an ImageFolder keeps every class in turn."""
    root = flat_folder(tmp_path / "flat", dataset, 12)
    (root / "zzz.png").write_bytes(b"not a picture")  # sorted last
    Image.fromarray(dataset.train.images[0]).resize((56, 56)).save(root / "00000.png")  # converted: counted
    loaded = sources.load(root, limit=5)
    assert len(loaded.train) == 5 and loaded.notes == ["1 image was resized to 28x28"]
    named = image_folder(tmp_path / "named", dataset, 20, {3: "cat", 1: "ant", 5: "bee"})
    whole, some = sources.load(named, need_labels=True), sources.load(named, need_labels=True, limit=7)
    kept = data.first_images(whole.train, 7)
    assert np.array_equal(some.train.images, kept.images) and some.train.labels.tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_recorded_class_names_are_read_by_name_for_a_model(tmp_path, tiny_cvae):
    """generate's HDF5 records its model's class names: another model reads its labels by name (as
    class folders), and refuses a name it lacks, instead of pairing them by number."""
    import h5py

    path = tmp_path / "gn.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["labels"] = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 2, 3], np.uint8)
        f.attrs["classes"] = json.dumps(["one", "three", "two", "zero"])
    assert sources.read([path]).labels.tolist() == [0, 1, 2, 3]  # no model: the file's own numbers
    assert sources.read([path], classes=["zero", "one", "two", "three"]).labels.tolist() == [1, 3, 2, 0]
    result = runner.invoke(app, ["encode", str(path), "--model", str(tiny_cvae)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {path} holds images of class 'one', which is not a class of the model (classes: 0, 1, 2, 3, 4, 5, 6, "
        "7, 8, 9): pass --labels\n"
    )


def test_a_tar_archive_is_named_as_one(tmp_path, tiny_cvae):
    out = tmp_path / "t.tar"
    assert (
        runner.invoke(
            app, ["generate", "--model", str(tiny_cvae), "-n", "1", "--format", "tar", "-o", str(out)]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["encode", str(out), "--model", str(tiny_cvae)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out} is a tar archive (generate --format tar), which mnistgen writes for other loaders but does not "
        "read: generate --format hdf5 or png for a set that mnistgen reads\n"
    )


def test_a_folder_of_idx_shards_names_one_shard_to_pass(tmp_path, tiny_cvae):
    """It was read as pictures: "...images-idx3-ubyte.gz is not an image file: move it out of the folder"."""
    out = tmp_path / "idx"
    for shard in ("0/2", "1/2"):
        args = ["generate", "--model", str(tiny_cvae), "-n", "3", "--format", "idx", "-o", str(out), "--seed", "1"]
        assert runner.invoke(app, args + ["--shard", shard]).exit_code == 0
    first = out / "train.shard-00000-of-00002-images-idx3-ubyte.gz"
    result = runner.invoke(app, ["encode", str(out), "--model", str(tiny_cvae)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {out} holds 2 IDX shards of generate --shard: pass their images files themselves (e.g. {first}; "
        "train --data takes one), or generate the set as one IDX pair (without --shard)\n"
    )
    assert len(sources.read([first]).labels) == 15  # the fix works: shard 0 of 30 images
    both = sorted(out.glob("*images-idx3-ubyte.gz"))
    assert len(sources.read(both).labels) == 30  # and all of them at once


def test_a_limit_on_class_folders_keeps_working_at_one_image_and_beside_unlabelled(tmp_path, dataset):
    named = image_folder(tmp_path / "named", dataset, 5, {3: "cat", 1: "ant"})
    assert len(sources.load(named, need_labels=True, limit=1).train) == 1  # the folder has two classes
    (tmp_path / "gen" / "unlabelled").mkdir(parents=True)  # generate's layout for a VAE's samples
    for i in range(3):
        Image.fromarray(dataset.train.images[i]).save(tmp_path / "gen" / "unlabelled" / f"{i:05d}.png")
    assert len(sources.load(tmp_path / "gen", limit=2).train) == 2


def test_example_writes_an_image_folder(tmp_path, mnist_dir, dataset):
    out = tmp_path / "folder"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--data", str(mnist_dir), "--count", "30", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    got = sources.load(out)
    assert sorted(got.train.labels.tolist()) == sorted(dataset.train.labels[:30].tolist())
    assert (out / str(dataset.train.labels[0]) / "0.png").is_file()
    after = tmp_path / "after"  # --skip: the next images, named by their index in the training set
    argv = [
        sys.executable,
        str(EXAMPLE),
        "--data",
        str(mnist_dir),
        "--skip",
        "30",
        "--count",
        "20",
        "--out",
        str(after),
    ]
    assert subprocess.run(argv, capture_output=True, text=True).returncode == 0
    assert sorted(sources.load(after).train.labels.tolist()) == sorted(dataset.train.labels[30:50].tolist())
    assert (after / str(dataset.train.labels[30]) / "30.png").is_file()


# -- bad inputs: one line naming the file and the fix, nothing written ------------------------------------


def _bad_inputs(tmp: Path, dataset) -> list[tuple[str, Path, str]]:
    """(model kind, --data, the exact error line) for every refused input."""
    empty = tmp / "empty"
    empty.mkdir()
    one_class = image_folder(tmp / "one", dataset, 3, {4: "4"})
    flat = flat_folder(tmp / "flat", dataset, 3)
    corrupt = image_folder(tmp / "corrupt", dataset, 2, {0: "0", 1: "1"})
    (corrupt / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    other = image_folder(tmp / "other", dataset, 2, {0: "0", 1: "1"})
    (other / "1" / "weights.bin").write_bytes(b"\x00\x01")
    bomb = image_folder(tmp / "bomb", dataset, 2, {0: "0", 1: "1"})
    png_declaring(bomb / "1" / "bomb.png", 20_000, 20_000)  # PIL itself refuses this one
    big = image_folder(tmp / "big", dataset, 2, {0: "0", 1: "1"})
    png_declaring(big / "1" / "big.png", 6_000, 6_000)  # under PIL's limit, over mnistgen's
    pickled = tmp / "pickled.npz"
    np.savez(pickled, images=np.zeros((2, 28, 28), np.uint8), labels=np.array([0, "x"], dtype=object))
    huge_npz = npy_header_only(tmp / "huge.npz", "images", (3_000_000, 28, 28))
    huge_idx = tmp / "idx"
    huge_idx.mkdir()
    (huge_idx / "train-images-idx3-ubyte").write_bytes(data.idx_header(data.IDX_IMAGES_MAGIC, (3_000_000, 28, 28)))
    data.write_idx(huge_idx / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    import h5py

    huge_h5 = tmp / "huge.h5"
    with h5py.File(huge_h5, "w") as f:
        f.create_dataset("images", (3_000_000, 28, 28), "uint8", chunks=(64, 28, 28))  # declared, never written
    bomb_message = (
        "declares a picture larger than 25,000,000 pixels or 10,000 on a side (a decompression bomb?): "
        "shrink it towards 28x28, or remove it"
    )
    forms = (
        "pass an MNIST IDX directory, an ImageFolder DIR/<class>/*.png, a folder of pictures, "
        "an .h5/.npz from generate, or the tutorial's .mat"
    )
    many = "declares 3,000,000 images, more than mnistgen reads at once (2,000,000): split it into smaller files"
    return [
        ("vae", empty, f"{empty} holds no image files and no MNIST IDX files: {forms}"),
        (
            "cvae",
            one_class,
            f"{one_class} has one class folder (4/): a cvae or the classifier needs at least 2 classes; "
            "add another, or train --model vae",
        ),
        (
            "classifier",
            flat,
            f"{flat} holds unlabelled pictures: only --model vae trains on them; "
            f"sort them into {flat}/<class>/ folders for a cvae or the classifier",
        ),
        (
            "cvae",
            corrupt,
            f"{corrupt / '1' / 'broken.png'} is truncated, as an interrupted copy or download leaves it: copy it "
            "again, or remove it",
        ),
        (
            "cvae",
            other,
            f"{other / '1' / 'weights.bin'} in {other} is not an image file: "
            "move it out of the folder, or pass the image files themselves",
        ),
        ("cvae", bomb, f"{bomb / '1' / 'bomb.png'} {bomb_message}"),
        ("vae", big, f"{big / '1' / 'big.png'} {bomb_message}"),
        (
            "cvae",
            pickled,
            f"{pickled}: 'labels' holds pickled Python objects, which mnistgen never loads: "
            "save it as a plain uint8 array (np.savez)",
        ),
        ("vae", huge_npz, f"{huge_npz} {many}"),
        ("vae", huge_idx, f"{huge_idx / 'train-images-idx3-ubyte'} {many}"),
        ("vae", huge_h5, f"{huge_h5} {many}"),
    ]


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, dataset):
    for kind, path, message in _bad_inputs(tmp_path, dataset):
        out = tmp_path / f"run-{path.name}"
        argv = ["train", "--model", kind, "--data", str(path), "--epochs", "1", "--out", str(out), "-q"]
        result = runner.invoke(app, argv)
        assert result.exit_code == 1, result.output
        assert result.stderr == f"Error: {message}\n"
        assert not out.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_broken_link_or_a_pipe_in_a_folder_is_named_not_skipped(tmp_path, dataset):
    """Skipped, a dangling link would leave a picture out unsaid: refused as an unreadable picture is."""
    broken = image_folder(tmp_path / "broken", dataset, 2, {0: "0", 1: "1"})
    (broken / "1" / "gone.png").symlink_to(tmp_path / "moved.png")  # a picture moved away: its link dangles
    (broken / "1" / ".#notes.txt").symlink_to(tmp_path / "editor-lock")  # an editor's lock: hidden, skipped
    loose = flat_folder(tmp_path / "loose", dataset, 2)
    (loose / "gone.png").symlink_to(tmp_path / "moved.png")
    piped = image_folder(tmp_path / "piped", dataset, 2, {0: "0", 1: "1"})
    (piped / "1" / "more").mkdir()
    os.mkfifo(piped / "1" / "more" / "feed.png")
    for path, message in (
        (
            broken,
            f"{broken / '1' / 'gone.png'} in {broken} is a broken symbolic link (to {tmp_path / 'moved.png'}): "
            "remove it, or restore its target",
        ),
        (
            loose,
            f"{loose / 'gone.png'} in {loose} is a broken symbolic link (to {tmp_path / 'moved.png'}): remove it, "
            "or restore its target",
        ),
        (
            piped,
            f"{piped / '1' / 'more' / 'feed.png'} in {piped} is not a regular file (a pipe or a device?): move it "
            "out of the folder",
        ),
    ):
        for reader in (sources.read, sources.load):
            with pytest.raises(MnistgenError) as caught:
                reader([path]) if reader is sources.read else reader(path)
            assert str(caught.value) == message


def test_encode_refuses_a_folder_that_is_not_a_class_of_the_model(tmp_path, dataset, tiny_cvae):
    root = image_folder(tmp_path / "f", dataset, 2, {3: "3", 5: "cat"})
    out = tmp_path / "z.csv"
    result = runner.invoke(app, ["encode", str(root), "--model", str(tiny_cvae), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: folder {root / 'cat'} is not a class of the model (classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9): "
        "rename it to one of them, or pass --labels\n"
    )
    assert not out.exists()
    labelled = runner.invoke(app, ["encode", str(root), "--model", str(tiny_cvae), "--labels", "3", "-o", str(out)])
    assert labelled.exit_code == 0, labelled.output


def test_a_vae_encodes_folders_of_any_name(tmp_path, dataset, tiny_vae):
    """A VAE's encoder takes no label, so class folders need not be classes of the model."""
    root = image_folder(tmp_path / "f", dataset, 2, {3: "dog", 5: "cat"})
    out = tmp_path / "z.csv"
    result = runner.invoke(app, ["encode", str(root), "--model", str(tiny_vae), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 4 and rows[1].startswith(str(root / "cat"))


def test_encode_refuses_a_bomb(tmp_path, tiny_cvae):
    bomb = png_declaring(tmp_path / "bomb.png", 20_000, 20_000)
    result = runner.invoke(app, ["encode", str(bomb), "--model", str(tiny_cvae), "--labels", "1"])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {bomb} declares a picture larger than 25,000,000 pixels or 10,000 on a side (a decompression bomb?): "
        "shrink it towards 28x28, or remove it\n"
    )


def tiff_with_damaged_tag(path: Path) -> Path:
    """A TIFF whose ImageDescription points past the end of the file: Pillow warns while reading its tags."""
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(path, tiffinfo={270: "a damaged description"})
    raw = bytearray(path.read_bytes())
    entry = raw.find(struct.pack("<HH", 270, 2))  # tag 270, type ASCII: then count (4 bytes), offset (4)
    raw[entry + 8 : entry + 12] = struct.pack("<I", 0x7FFFFF)
    path.write_bytes(bytes(raw))
    return path


def test_a_damaged_tiff_is_one_line_without_pillow_warnings(tmp_path):
    tiff = tiff_with_damaged_tag(tmp_path / "d.tiff")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the reader would be raised here, not the one line
        with pytest.raises(MnistgenError) as caught:
            sources.read([tiff])
    assert str(caught.value) == (
        f"{tiff} is not a readable image (UnidentifiedImageError): remove it or convert it to PNG"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_is_refused_not_waited_on(tmp_path, tiny_cvae):
    fifo = tmp_path / "digits.png"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    message = f"{fifo} is not a regular file (a pipe or a device?): save the data to a file and pass that"
    out = tmp_path / "z.csv"
    result = runner.invoke(app, ["encode", str(fifo), "--model", str(tiny_cvae), "--labels", "1", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {message}\n"
    assert not out.exists()
    with pytest.raises(MnistgenError) as caught:
        sources.load(fifo)  # train --data
    assert str(caught.value) == message


# -- arrays of the wrong kind, empty sources, bad labels and pixels, memory bounded by headers ----------

GENERATE = "mnistgen reads images uint8 (N, 28, 28) and labels (N,), as generate writes"
MAT = "mnistgen reads 'image' (N, 1, 28, 28) in [0, 1] and one-hot 'label' (N, classes), as the tutorial's train.mat"
SCALE = "scale the images to 0..255 and save them as uint8"


def h5_file(path: Path, groups: tuple = (), **arrays) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        for name in groups:
            f.create_group(name)
        for name, value in arrays.items():
            f[name] = value
    return path


def zip_flagged(path: Path, offsets: tuple[int, int], value: int) -> Path:
    """An .npz with the 2-byte field at `offsets` (local header, central directory entry) set to
    `value`: flag bit 0 = encrypted, or an unknown compression method."""
    np.savez(path, images=np.zeros((2, 28, 28), np.uint8))
    raw = bytearray(path.read_bytes())
    for signature, offset in zip((b"PK\x03\x04", b"PK\x01\x02"), offsets):
        at = raw.index(signature) + offset
        raw[at : at + 2] = struct.pack("<H", value)
    path.write_bytes(bytes(raw))
    return path


def _bad_arrays(tmp: Path, dataset) -> list[tuple[Path, str]]:
    """(source, the exact error line) for each array the readers refuse."""
    images, labels = dataset.train.images[:4], dataset.train.labels[:4]
    unit = images.astype(np.float32) / 255.0
    import h5py

    h5 = {
        "group": h5_file(tmp / "group.h5", groups=("images",)),
        "labels_group": h5_file(tmp / "labels_group.h5", groups=("labels",), images=images),
        "strings": h5_file(tmp / "strings.h5", images=np.full((2, 28, 28), "x", dtype=h5py.string_dtype())),
        "mat_group": h5_file(tmp / "mat_group.mat", groups=("image",), label=np.eye(10)[:3]),
        "empty": h5_file(tmp / "empty.h5", images=np.zeros((0, 28, 28), np.uint8)),
        "mat_empty": h5_file(
            tmp / "mat_empty.mat", image=np.zeros((0, 1, 28, 28), np.float32), label=np.zeros((0, 10))
        ),
        "nan": h5_file(tmp / "nan.h5", images=images, labels=np.array([1.0, np.nan, 2.0, 3.0])),
        "big": h5_file(tmp / "big.h5", images=images, labels=np.array([1, 2, 300, 3])),
        "mat_255": h5_file(tmp / "mat255.mat", image=unit[:, None] * 255, label=np.eye(10)[labels]),
        "mat_nan": h5_file(tmp / "matnan.mat", image=np.full((2, 1, 28, 28), np.nan), label=np.eye(10)[:2]),
        "mat_label": h5_file(tmp / "matlabel.mat", image=unit[:, None], label=labels[:, None]),
        "float": h5_file(tmp / "float.h5", images=unit),
    }
    npz = {"neg": tmp / "neg.npz", "binary": tmp / "binary.npz"}
    np.savez(npz["neg"], images=images, labels=np.array([-1, 2, 3, 4]))
    np.savez(npz["binary"], images=(images > 127).astype(np.float32))  # binarized: 0.0 and 1.0 only
    encrypted = zip_flagged(tmp / "encrypted.npz", (6, 8), 1)
    method = zip_flagged(tmp / "method99.npz", (8, 10), 99)
    void = npy_header_only(tmp / "void.npz", "images", (10, 28, 28), "|V1000000000")
    doubles = npy_header_only(tmp / "doubles.npz", "images", (2_000_000, 28, 28), "<f8")
    empty_idx = tmp / "idx"
    empty_idx.mkdir()
    data.write_idx(empty_idx / "train-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    data.write_idx(empty_idx / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    merged = image_folder(tmp / "merged", dataset, 1, {7: "7", 3: "3", 1: "007"})
    too_many = image_folder(tmp / "too_many", dataset, 1, {3: "3", 1: "300"})
    nothing = "holds no images: pass a file or folder with at least one image"
    return [
        (h5["group"], f"{h5['group']}: 'images' is an HDF5 group, not an array: {GENERATE}"),
        (h5["labels_group"], f"{h5['labels_group']}: 'labels' is an HDF5 group, not an array: {GENERATE}"),
        (h5["strings"], f"{h5['strings']}: 'images' holds object values, not numbers: {GENERATE}"),
        (h5["mat_group"], f"{h5['mat_group']}: 'image' is an HDF5 group, not an array: {MAT}"),
        (h5["empty"], f"{h5['empty']} {nothing}"),
        (h5["mat_empty"], f"{h5['mat_empty']} {nothing}"),
        (empty_idx, f"{empty_idx / 'train-images-idx3-ubyte'} {nothing}"),
        (
            encrypted,
            f"{encrypted} cannot be opened (File 'images.npy' is encrypted, password required for extraction): "
            "save it again with np.savez",
        ),
        (method, f"{method} cannot be opened (That compression method is not supported): save it again with np.savez"),
        (
            npz["neg"],
            f"{npz['neg']}: 'labels' holds -1, not a class label: labels are whole numbers 0-255; correct them",
        ),
        (
            h5["nan"],
            f"{h5['nan']}: 'labels' holds nan, not a class label: labels are whole numbers 0-255; correct them",
        ),
        (
            h5["big"],
            f"{h5['big']}: 'labels' holds 300, not a class label: labels are whole numbers 0-255; correct them",
        ),
        (
            h5["float"],
            f"{h5['float']}: 'images' holds the pixel value 0.0117647: mnistgen reads whole numbers 0-255; {SCALE}",
        ),
        (npz["binary"], f"{npz['binary']}: 'images' holds float32 values in 0-1: {SCALE}"),
        (
            h5["mat_255"],
            f"{h5['mat_255']}: 'image' holds the pixel value 3: the tutorial's train.mat holds pixels in [0, 1]; "
            "scale them",
        ),
        (
            h5["mat_nan"],
            f"{h5['mat_nan']}: 'image' holds the pixel value nan: the tutorial's train.mat holds pixels in [0, 1]; "
            "scale them",
        ),
        (h5["mat_label"], f"{h5['mat_label']}: 'label' has shape (4, 1) for 4 images: {MAT}"),
        (void, f"{void}: 'images' holds |V1000000000 values, not numbers: {GENERATE}"),
        (
            doubles,
            f"{doubles}: 'images' declares 12,544,000,000 bytes of float64, more than mnistgen reads at once "
            "(1,568,000,000): save the images as uint8, or split the file",
        ),
        (
            merged,
            f"{merged} has class folders 007/ and 7/ for the same label 7: merge them into one folder, or rename one",
        ),
        (too_many, f"folder {too_many / '300'} names label 300: mnistgen handles labels 0-255; rename the folder"),
    ]


def test_bad_arrays_are_refused_in_one_line(tmp_path, dataset):
    for path, message in _bad_arrays(tmp_path, dataset):
        for reader in (sources.read, sources.load):  # encode/evaluate --images, and train --data
            with pytest.raises(MnistgenError) as caught:
                reader([path]) if reader is sources.read else reader(path)
            assert str(caught.value) == message, path


def test_encode_refuses_bad_arrays_and_writes_nothing(tmp_path, dataset, tiny_cvae):
    refused = {path.name: message for path, message in _bad_arrays(tmp_path, dataset)}
    for name in ("labels_group.h5", "empty.h5", "encrypted.npz", "neg.npz", "merged"):
        out = tmp_path / f"{name}.csv"
        result = runner.invoke(app, ["encode", str(tmp_path / name), "--model", str(tiny_cvae), "-o", str(out)])
        assert result.exit_code == 1, result.output
        assert result.stderr == f"Error: {refused[name]}\n"
        assert not out.exists()


def test_numeric_images_and_labels_of_any_dtype_are_read(tmp_path, dataset, monkeypatch):
    """Whole-number float images and float labels read as the uint8 ones; the tutorial's .mat
    with its labels either way round; read a few images at a time (chunk boundaries crossed)."""
    monkeypatch.setattr(sources, "READ_CHUNK", 7)
    images, labels = dataset.train.images[:50], dataset.train.labels[:50]
    path = h5_file(tmp_path / "float.h5", images=images.astype(np.float64), labels=labels.astype(np.float32))
    got = sources.read([path])
    assert np.array_equal(got.images, images) and np.array_equal(got.labels, labels)
    np.savez(tmp_path / "int.npz", images=images.astype(np.int16), labels=labels.astype(np.int8))
    assert np.array_equal(sources.load(tmp_path / "int.npz").train.images, images)
    unit = (images.astype(np.float32) / 255.0).transpose(0, 2, 1)[:, None]
    onehot = np.eye(10, dtype=np.float32)[labels]
    for label in (onehot, onehot.T):  # (N, classes), and MATLAB's own (N, classes) as h5py reads it
        mat = h5_file(tmp_path / f"train{label.shape[0]}.mat", image=unit, label=label)
        got = sources.read([mat], limit=20)
        assert np.array_equal(got.images, images[:20]) and np.array_equal(got.labels, labels[:20])


def test_a_sparse_mat_declaring_millions_reads_what_limit_needs(tmp_path):
    """A 2 KB file declaring 2,000,000 float32 images (6 GB): read with --limit 1 under a 1 GB
    address-space limit, as it was read whole before."""
    import h5py

    mat = tmp_path / "sparse.mat"
    with h5py.File(mat, "w") as f:
        f.create_dataset("image", (2_000_000, 1, 28, 28), "float32", chunks=(1024, 1, 28, 28))
        f.create_dataset("label", (2_000_000, 10), "float64", chunks=(4096, 10))
    assert mat.stat().st_size < 10_000
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1_000_000_000,) * 2)\n"
        "from mnistgen import sources\n"
        "print(sources.read([sys.argv[1]], limit=1).images.shape)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(mat)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "(1, 28, 28)\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_class_folder_is_named_not_called_empty(tmp_path, dataset):
    root = image_folder(tmp_path / "f", dataset, 2, {0: "0", 1: "1"})
    (root / "1").chmod(0)
    try:
        with pytest.raises(MnistgenError) as caught:
            sources.load(root, need_labels=True)
    finally:
        (root / "1").chmod(0o755)
    assert str(caught.value) == (
        f"cannot read the folder {root / '1'}: permission denied; make it readable, or move it out"
    )
