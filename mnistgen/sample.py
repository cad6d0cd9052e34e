"""Sampling from a trained model: latents, decoding, generation plans. Returns arrays; writes nothing.

Reproducibility rules:
- latents are drawn per block of BLOCK images aligned to the global index within a label,
  from a random stream keyed by (seed, label, block): image i of digit 7 gets the same z
  whether you ask for 10 or 10,000 images, for digit 7 alone or for all digits, in one run
  or in shards;
- decoding always runs on whole blocks, so pixels never depend on batch size or sharding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from mnistgen.checkpoint import Weights

BLOCK = 256  # images per latent draw and per decode call
STREAM_GENERATE = 10  # keeps generation's random stream apart from training's
UNLABELLED = -1  # the label of an unconditional model's samples
UNLABELLED_KEY = 1_000  # stream key for unlabelled samples (labels are < 256)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float (B, 1, 28, 28) in [-1, 1] -> uint8 (B, 28, 28)."""
    return np.clip(np.rint((images[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def block_latents(seed: int, label: int, block: int, latent: int, temperature: float = 1.0) -> np.ndarray:
    """float32 (BLOCK, latent): prior samples for images [block*BLOCK, (block+1)*BLOCK) of `label`."""
    key = UNLABELLED_KEY if label == UNLABELLED else label
    rng = np.random.default_rng([seed, STREAM_GENERATE, key, block])
    return rng.standard_normal((BLOCK, latent), dtype=np.float32) * np.float32(temperature)


def decode(model, z: np.ndarray, labels: Optional[np.ndarray]) -> np.ndarray:
    """Decode float32 latents (B, d) [with int labels (B,)] -> uint8 images (B, 28, 28)."""
    from mnistgen.model import one_hot, paddle

    model.eval()
    with paddle.no_grad():
        onehot = one_hot(labels, model.cfg.num_classes) if labels is not None else None
        out = model.decoder(paddle.to_tensor(z), onehot)  # (B, 1, 28, 28)
    return to_uint8(out.numpy())


def load_model(weights: Weights):
    """Build the Paddle model described by a checked weights file and load its tensors."""
    from mnistgen import model as model_lib

    net = model_lib.build(weights.config)
    model_lib.load_arrays(net, weights.arrays())
    net.eval()
    return net


@dataclass
class Batch:
    label: int  # digit (or UNLABELLED)
    indices: np.ndarray  # int64 (n,): index of each image within its label
    z: np.ndarray  # float32 (n, d)
    images: np.ndarray  # uint8 (n, 28, 28)


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def bounds(self, total: int) -> tuple[int, int]:
        """This shard's [start, stop) of the global sequence of `total` images."""
        return self.index * total // self.count, (self.index + 1) * total // self.count


def plan(labels: list[int], count: int, shard: Shard = Shard(0, 1)) -> Iterator[tuple[int, int, int, int]]:
    """Yield (label, block, lo, hi): the images [lo, hi) of `label` inside `block` this shard owns.

    The global sequence is label-major: all images of labels[0], then labels[1], ...
    """
    start, stop = shard.bounds(len(labels) * count)
    for pos, label in enumerate(labels):
        first, last = max(start - pos * count, 0), min(stop - pos * count, count)
        for block in range(first // BLOCK, -(-last // BLOCK) if last > first else 0):
            lo, hi = max(first, block * BLOCK), min(last, (block + 1) * BLOCK)
            if hi > lo:
                yield label, block, lo, hi


def generate(model, labels: list[int], count: int, seed: int, temperature: float = 1.0, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
    """Generate `count` images per label (this shard's part), block by block."""
    d = model.cfg.latent
    for label, block, lo, hi in plan(labels, count, shard):
        z = block_latents(seed, label, block, d, temperature)
        block_labels = None if label == UNLABELLED else np.full(BLOCK, label, dtype=np.int64)
        images = decode(model, z, block_labels)
        keep = slice(lo - block * BLOCK, hi - block * BLOCK)
        yield Batch(label, np.arange(lo, hi, dtype=np.int64), z[keep], images[keep])
