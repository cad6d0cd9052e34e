"""Writers for generated images: PNG files (atomic), image grids. No Paddle here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mnistgen import atomic

GRID_PAD = 2  # pixels between tiles in a grid
GRID_BACKGROUND = 0  # black gaps, like MNIST's background


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W) -> PNG bytes (8-bit grayscale)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, image: np.ndarray, scale: int = 1) -> None:
    """Write a uint8 (H, W) image as PNG, atomically; `scale` enlarges it by pixel repetition."""
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    atomic.write_bytes(path, png_bytes(image))


def tile(images: np.ndarray, pad: int = GRID_PAD) -> np.ndarray:
    """uint8 (R, C, H, W) -> one uint8 image with R rows and C columns of tiles."""
    rows, cols, h, w = images.shape
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), GRID_BACKGROUND, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[r, c]
    return out
