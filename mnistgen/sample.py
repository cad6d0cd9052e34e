"""Drawing samples: the latents, the block plan, the confidence filter, and the Sampler that runs a
resolved sampling spec (sampling.py) with a decoder (decoders.py). Pure numpy (decoders are passed
in); writes nothing.

Reproducibility rules:
- latents are drawn per block of BLOCK images aligned to the global index within a label,
  from a random stream keyed by (seed, label, block): image i of digit 7 gets the same z
  whether you ask for 10 or 10,000 images, for digit 7 alone or for all digits, in one run
  or in shards;
- decoding always runs on whole blocks, so pixels never depend on batch size or sharding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen.config import UNLABELLED, PriorKind
from mnistgen.data import one_hot
from mnistgen.errors import MnistgenError
from mnistgen.sampling import Prior, Sampling
from mnistgen.settings import setting_text

BLOCK = 256  # images per latent draw and per decode call
STREAM_GENERATE = 10  # keeps generation's random stream apart from training's
STREAM_TRUNCATE = 11  # the redraws that replace draws outside a truncation radius
STREAM_COMPONENT = 12  # which mixture component each latent of a block comes from
TRUNCATION_POOL = 64  # candidates drawn per needed latent and round when truncating
TRUNCATION_ROUNDS = 8  # rounds before a truncation radius is declared too small for the latent
UNLABELLED_KEY = 1_000  # stream key for unlabelled samples (labels are < 256)
MAX_FILTER_ATTEMPTS = 200  # redraw chunks per block before a confidence filter gives up
REDRAW_CHUNK = 16  # redraws are decoded in multiples of this many candidates, at most a BLOCK (at 97%
# acceptance a block misses ~8 images: 16 candidates cover them, where 32 made every block cost 12.5% more)
REDRAW_MARGIN = 1.25  # candidates drawn per missing image, beyond the block's own acceptance rate
MIN_TRIES_FOR_VERDICT = 1_000  # candidates seen before a hopeless acceptance rate is declared
MIN_ACCEPTANCE = 0.01  # below 1% accepted, --min-confidence is refused as impossible


def stream_key(label: int) -> int:
    """A label's key in the random streams (an unconditional model's samples have their own)."""
    return UNLABELLED_KEY if label == UNLABELLED else label


def block_latents(
    seed: int,
    label: int,
    block: int,
    latent: int,
    temperature: float = 1.0,
    attempt: int = 0,
    truncation: Optional[float] = None,
    truncation_card: Optional[Path] = None,
) -> np.ndarray:
    """float32 (BLOCK, latent): prior samples for images [block*BLOCK, (block+1)*BLOCK) of `label`
    (attempt > 0: the redraws a confidence filter asks for). With a truncation radius R, standard-
    normal draws longer than R are replaced, in order, by the next draws of the block's own
    redraw stream that fall inside (the "truncation trick", Brock et al., ICLR 2019): still a
    function of (seed, label, block, attempt) only."""
    key = stream_key(label)
    rng = np.random.default_rng([seed, STREAM_GENERATE, key, block] + ([attempt] if attempt else []))
    eps = rng.standard_normal((BLOCK, latent), dtype=np.float32)
    if truncation is not None:
        redraws = np.random.default_rng([seed, STREAM_TRUNCATE, key, block, attempt])
        eps = _truncate(eps, truncation, redraws, truncation_card)
    return eps * np.float32(temperature)


def _truncate(eps: np.ndarray, radius: float, redraws: np.random.Generator, card: Optional[Path]) -> np.ndarray:
    outside = np.flatnonzero(np.linalg.norm(eps, axis=1) > radius)
    for _ in range(TRUNCATION_ROUNDS):
        if not len(outside):
            return eps
        pool = redraws.standard_normal((TRUNCATION_POOL * len(outside), eps.shape[1]), dtype=np.float32)
        inside = pool[np.linalg.norm(pool, axis=1) <= radius][: len(outside)]
        eps[outside[: len(inside)]] = inside
        outside = outside[len(inside) :]
    if len(outside):
        raise MnistgenError(
            f"{setting_text('truncation', radius, card)} keeps almost no draws of a {eps.shape[1]}-dimensional latent "
            f"(their typical length is {np.sqrt(eps.shape[1]):.1f}): use a larger radius"
        )
    return eps


def latents(
    seed: int, label: int, block: int, latent: int, temperature: float = 1.0, attempt: int = 0, prior: Prior = Prior()
) -> np.ndarray:
    """float32 (BLOCK, latent): the latents of images [block*BLOCK, (block+1)*BLOCK) of `label`."""
    components = (
        np.random.default_rng([seed, STREAM_COMPONENT, stream_key(label), block, attempt])
        if prior.kind == PriorKind.mixture.value
        else None
    )
    eps = block_latents(seed, label, block, latent, temperature, attempt, prior.truncation, prior.truncation_card)
    return prior.apply(eps, label, components)


@dataclass
class Batch:
    label: int  # digit (or UNLABELLED)
    indices: np.ndarray  # int64 (n,): index of each image within its label
    z: np.ndarray  # float32 (n, d)
    images: Optional[np.ndarray]  # uint8 (n, 28, 28); None when only latents were asked for


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


def redraw_size(missing: int, rate: float) -> int:
    """Candidates to decode for `missing` images at acceptance `rate`: a multiple of REDRAW_CHUNK,
    at most a BLOCK."""
    wanted = missing / rate * REDRAW_MARGIN  # (expected tries for the missing images) x margin
    return int(min(BLOCK, REDRAW_CHUNK * np.ceil(wanted / REDRAW_CHUNK)))


class ConfidenceFilter:
    """Keeps only samples a classifier assigns to their label with probability >= threshold.

    A block is decoded and judged whole; its rejected images are then replaced, in index order, by
    the accepted candidates of redraw chunks from the streams (seed, label, block, attempt). Each
    chunk holds as many candidates as the missing images need at the block's own first-pass
    acceptance rate (x REDRAW_MARGIN), rounded up to a multiple of REDRAW_CHUNK: a block at 90%
    acceptance costs about a fifth more, not a second full decode. The sizes depend only on the
    block, so the image at an index does too - not batch size, shard or resume.
    """

    def __init__(self, judge, threshold: float, max_attempts: int = MAX_FILTER_ATTEMPTS, card: Optional[Path] = None):
        self.judge, self.threshold, self.max_attempts = judge, threshold, max_attempts
        self.card = card  # the model card that recommended the threshold (None: --min-confidence)
        self.tried = self.accepted = 0

    @property
    def acceptance(self) -> float:
        return self.accepted / self.tried if self.tried else 1.0

    def accept(self, images: np.ndarray, label: int) -> np.ndarray:
        probs = self.judge(images)  # (B, classes)
        score = probs.max(1) if label == UNLABELLED else probs[:, label]
        passed = score >= self.threshold
        self.tried += len(images)  # every candidate judged: a fair estimate of the rate
        self.accepted += int(passed.sum())
        return passed

    def run(self, decoder, seed: int, label: int, block: int, temperature: float, onehot, prior: Prior = Prior()):
        """(z, images) of the whole block, every image accepted."""
        d = decoder.config.latent
        z = latents(seed, label, block, d, temperature, 0, prior)
        images = decoder(z, onehot)
        missing = np.flatnonzero(~self.accept(images, label))
        rate = max(1.0 - len(missing) / len(z), 1.0 / len(z))  # this block's own: chunk sizes depend on it alone
        for attempt in range(1, self.max_attempts + 1):
            if not len(missing):
                return z, images
            if self.tried >= MIN_TRIES_FOR_VERDICT and self.acceptance < MIN_ACCEPTANCE:
                break
            size = redraw_size(len(missing), rate)
            z_new = latents(seed, label, block, d, temperature, attempt, prior)[:size]
            images_new = decoder(z_new, onehot[:size] if onehot is not None else None)
            take = np.flatnonzero(self.accept(images_new, label))[: len(missing)]
            z[missing[: len(take)]], images[missing[: len(take)]] = z_new[take], images_new[take]
            missing = missing[len(take) :]
        if not len(missing):
            return z, images
        raise MnistgenError(
            f"{setting_text('min_confidence', self.threshold, self.card)}: only {self.acceptance:.2%} of samples "
            f"of label {label} pass after "
            f"{self.tried} tries; lower --min-confidence or use a better model"
        )


def block_batch(
    decoder,
    seed: int,
    label: int,
    block: int,
    lo: int,
    hi: int,
    temperature: float = 1.0,
    decode: bool = True,
    confidence: Optional[ConfidenceFilter] = None,
    prior: Prior = Prior(),
) -> Batch:
    """Images [lo, hi) of `label` from `block`: the whole block's latents are drawn and decoded,
    so the pixels do not depend on which part of the block is wanted. decode=False gives the
    latents only (resume: the images are already on disk); with a filter, decoding is needed
    to know which latents were kept, so it always decodes."""
    keep = slice(lo - block * BLOCK, hi - block * BLOCK)
    onehot = None if label == UNLABELLED else one_hot(np.full(BLOCK, label), decoder.config.num_classes)
    if confidence is not None:
        z, images = confidence.run(decoder, seed, label, block, temperature, onehot, prior)
        return Batch(label, np.arange(lo, hi, dtype=np.int64), z[keep], images[keep])
    z = latents(seed, label, block, decoder.config.latent, temperature, 0, prior)
    images = decoder(z, onehot)[keep] if decode else None
    return Batch(label, np.arange(lo, hi, dtype=np.int64), z[keep], images)


@dataclass
class Sampler:
    """A resolved sampling spec with what runs it: a decoder (decoders.py) and, when the spec
    verifies, its confidence filter. The one way generate, evaluate, the API and datasets draw
    images, so pixels agree everywhere for the same seed."""

    decoder: object  # (z (B, d), onehot (B, C) | None) -> uint8 (B, 28, 28), with .config/.name/.precision
    sampling: Sampling = Sampling()
    confidence: Optional[ConfidenceFilter] = None

    def batch(self, seed: int, label: int, block: int, lo: int, hi: int, decode: bool = True) -> Batch:
        """Images [lo, hi) of `label` from `block` (see block_batch)."""
        s = self.sampling
        return block_batch(self.decoder, seed, label, block, lo, hi, s.temperature, decode, self.confidence, s.prior)

    def generate(self, labels: list[int], count: int, seed: int, shard: Shard = Shard(0, 1)) -> Iterator[Batch]:
        """`count` images per label (this shard's part), block by block."""
        for label, block, lo, hi in plan(labels, count, shard):
            yield self.batch(seed, label, block, lo, hi)

    def arrays(
        self, labels: list[int], count: int, seed: int, on_progress=lambda drawn: None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All of `generate` at once: images uint8 (N, 28, 28), labels int64 (N,) (UNLABELLED for a
        VAE), latents float32 (N, d), in generate's label-major order; `on_progress(images drawn)`
        hears of each block."""
        batches, drawn = [], 0
        for batch in self.generate(labels, count, seed):
            batches.append(batch)
            drawn += len(batch.images)
            on_progress(drawn)
        return (
            np.concatenate([b.images for b in batches]),
            np.concatenate([np.full(len(b.images), b.label, np.int64) for b in batches]),
            np.concatenate([b.z for b in batches]),
        )
