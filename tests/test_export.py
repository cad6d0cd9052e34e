"""The PNG encoder and grids: what PIL (and so torchvision / Hugging Face) reads back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mnistgen import atomic, export


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


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic.write_bytes(tmp_path / "a.bin", b"x")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
