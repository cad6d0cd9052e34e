"""The PNG encoder and grids: what PIL (and so torchvision / Hugging Face) reads back."""

from __future__ import annotations

import gc
import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

from mnistgen import atomic, export
from mnistgen.errors import MnistgenError


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (298, 598), (3, 700)])
def test_png_round_trips_through_pil(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    with Image.open(io.BytesIO(export.png_bytes(image))) as im:
        im.load()
        assert im.mode == "L" and im.size == (shape[1], shape[0])
        assert np.array_equal(np.asarray(im), image)


def test_tile_places_images_in_rows_and_columns():
    images = np.arange(6, dtype=np.uint8).reshape(2, 3, 1, 1).repeat(28, 2).repeat(28, 3)
    grid = export.tile(images)
    assert grid.shape == (2 * 30 - 2, 3 * 30 - 2)
    assert grid[0, 0] == 0 and grid[0, 60] == 2 and grid[30, 30] == 4 and grid[28, 0] == export.GRID_BACKGROUND


def test_panel_captions_are_drawable_and_stay_over_their_panel():
    """A grid's class names: PIL's default font has printable ASCII only (a class "É" drew as a
    box), so other names are folded with the panel's number; a long name is cut at its panel's
    edge instead of being drawn over the next panel's caption."""
    fits = lambda text: len(text) <= 12  # noqa: E731
    assert export.drawable_caption("letter F", 4, fits) == "letter F"
    assert export.drawable_caption("É", 5, fits) == "E (5)"
    assert export.drawable_caption("字", 2, fits) == "(2)"
    assert export.drawable_caption("D_" + "x" * 200, 3, fits) == "D_xxxxxxxx.."
    assert export.drawable_caption("Émile_" + "x" * 200, 1, fits) == "Emile_.. (1)"
    picture = np.zeros((28, 28), dtype=np.uint8)
    grid = export.panels([picture, picture], ["D_" + "x" * 200, ""])
    second_caption = grid[: export.PANEL_CAPTION, 28 + export.PANEL_GAP :]
    assert np.all(second_caption == export.PANEL_BACKGROUND)  # nothing of the first name spills over
    assert np.any(grid[: export.PANEL_CAPTION, :28] != export.PANEL_BACKGROUND)  # its own caption is drawn


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic.write_bytes(tmp_path / "a.bin", b"x")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


LONG_STEM = "a" * 246  # with ".npz": a 250-byte name, which fits; its ".NAME.PID-TID-HOST.part" would not


def test_a_long_name_gets_a_short_unique_temporary_name(tmp_path):
    dest = tmp_path / f"{LONG_STEM}.npz"
    tmp = atomic.temp_name(dest)
    assert len(os.fsencode(tmp.name)) <= atomic.name_max(str(tmp_path))
    assert tmp.name.startswith(".aaa") and tmp.name.endswith(atomic.TEMP_SUFFIX)
    assert atomic.writer_alive(tmp)  # the pid is still read from it: this process
    assert atomic.temp_name(tmp_path / f"{LONG_STEM}.npy") != tmp  # another name, another hash
    atomic.write_bytes(dest, b"x")
    with atomic.atomic_path(tmp_path / f"{'é' * 125}.h5") as tmp2:  # 250 bytes in 2-byte characters
        tmp2.write_bytes(b"y")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dest.name, f"{'é' * 125}.h5"])


def test_a_missing_directory_is_reported_as_such_and_names_no_temporary(tmp_path):
    with pytest.raises(MnistgenError) as info:
        atomic.write_bytes(tmp_path / "nodir" / "z.npy", b"x")
    assert str(info.value) == (
        f"cannot write {tmp_path}/nodir/z.npy: directory {tmp_path}/nodir does not exist: create it, or choose "
        "another path"
    )
    with pytest.raises(MnistgenError, match="nodir does not exist: create it"):
        with atomic.atomic_path(tmp_path / "nodir" / "z.npy") as tmp:
            tmp.write_bytes(b"x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, force, message",
    [
        (
            "nodir/z.npy",
            False,
            "--plot {t}/nodir/z.npy: directory {t}/nodir does not exist: create it, or choose another --plot",
        ),
        ("file.txt/z.npy", False, "--plot {t}/file.txt/z.npy: {t}/file.txt is a file, not a directory"),
        ("file.txt", False, "{t}/file.txt already exists: pass --force to replace it, or choose another --plot"),
        ("sub", True, "--plot {t}/sub is a directory: give a file name"),
        (
            "b" * 300 + ".png",
            True,
            "the name is longer than the 255 bytes this file system allows: choose a shorter one",
        ),
    ],
)
def test_check_new_file_refuses_what_cannot_or_should_not_be_written(tmp_path, name, force, message):
    (tmp_path / "file.txt").write_text("keep")
    (tmp_path / "sub").mkdir()
    with pytest.raises(MnistgenError) as info:
        atomic.check_new_file(tmp_path / name, "--plot", force)
    assert message.format(t=tmp_path) in str(info.value)
    atomic.check_new_file(tmp_path / "file.txt", "--plot", force=True)  # --force: replacing is asked for
    atomic.check_new_file(tmp_path / "new.png", "--plot")


def test_two_options_may_not_name_one_file(tmp_path):
    outputs = {"--out": tmp_path / "a.csv", "--plot": None, "--reconstruct": tmp_path / "." / "a.csv"}
    with pytest.raises(MnistgenError) as info:
        atomic.check_new_files(outputs)
    assert str(info.value) == f"--out and --reconstruct both name {tmp_path}/a.csv: give each its own file"


def test_frames_replace_an_earlier_walk_and_keep_other_files(tmp_path):
    folder = tmp_path / "fr"
    export.write_frames(folder, np.zeros((16, 28, 28), np.uint8))
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(MnistgenError) as info:
        export.check_walk_out(folder, "frames")
    assert (
        str(info.value)
        == f"--out {folder} is not empty: pass --force to replace its frames, or choose another directory"
    )
    export.check_walk_out(folder, "frames", force=True)
    export.write_frames(folder, np.zeros((4, 28, 28), np.uint8))
    assert sorted(p.name for p in folder.iterdir()) == [f"frame-000{i}.png" for i in range(4)] + ["notes.txt"]
    with pytest.raises(MnistgenError, match="is a file: --to frames writes a folder of PNGs; give a directory"):
        export.check_walk_out(folder / "notes.txt", "frames", force=True)


def test_a_failed_gif_leaves_no_writer_behind(tmp_path, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(MnistgenError, match="does not exist: create it"):
        export.write_gif(tmp_path / "nodir" / "w.gif", np.zeros((3, 28, 28), np.uint8), fps=10)
    gc.collect()
    assert unraisable == [] and list(tmp_path.iterdir()) == []
    frames = np.arange(3, dtype=np.uint8).reshape(3, 1, 1).repeat(28, 1).repeat(28, 2) * 100
    export.write_gif(tmp_path / "w.gif", frames, fps=10)
    with Image.open(tmp_path / "w.gif") as im:
        assert im.n_frames == 3


BAD_NAME = os.fsdecode(b"bad\xffname.png")  # not UTF-8: Python holds the byte as a surrogate escape


def test_latents_of_a_file_name_that_is_not_utf8_stay_valid_utf8(tmp_path):
    import h5py

    names = [BAD_NAME, "ünï.png"]
    means, stds = np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)
    export.write_latents(tmp_path / "u.csv", names, [3, 8], means, stds)
    rows = (tmp_path / "u.csv").read_text(encoding="utf-8").splitlines()
    assert rows[1].startswith("bad\\xffname.png,3,") and rows[2].startswith("ünï.png,8,")
    export.write_latents(tmp_path / "u.h5", names, [3, 8], means, stds)
    with h5py.File(tmp_path / "u.h5") as f:
        assert list(f["sources"].asstr()[:]) == ["bad\\xffname.png", "ünï.png"]
    assert export.source_text("\ud800.png") == "\\ud800.png"  # a lone surrogate no file system gave


@pytest.mark.parametrize(
    "label, classes, keys",
    [
        (3, None, ["seed", "label", "z"]),
        (3, [f"c{d}" for d in range(10)], ["seed", "label", "class", "z"]),
        (-1, None, ["seed", "label", "z"]),  # config.UNLABELLED: an unconditional model's image
    ],
)
def test_a_tar_records_what_records_recognises_as_generates_own(tmp_path, label, classes, keys):
    """The tar's .json keys are defined once (export.TAR_*): what TarWriter writes, records.py accepts."""
    import json
    import tarfile

    from mnistgen import records
    from mnistgen.config import UNLABELLED, Format

    label = UNLABELLED if label < 0 else label
    images, z = np.zeros((2, 28, 28), np.uint8), np.array([[0.1234567, -2.0], [1.0, 0.5]], np.float32)
    attrs = {"seed": 7, "classes": classes}
    with export.TarWriter(tmp_path / "s.tar", 2, 2, attrs, first=0, key_width=export.tar_key_width(2)) as writer:
        writer.write(images, label, z, 0)
    with tarfile.open(tmp_path / "s.tar") as archive:
        meta = json.loads(archive.extractfile("000000.json").read())
    assert list(meta) == keys and meta["z"] == [0.123457, -2.0]
    recorded = records.recorded_settings(tmp_path / "s.tar", Format.tar)
    assert recorded == meta and records._written_by_generate(recorded, tar=True)
    assert not records._written_by_generate({**recorded, "extra": 1}, tar=True)
