"""Sampling from a trained model: latents, decoding, generation plans. Returns arrays; writes nothing.

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
from typing import Optional

import numpy as np

from mnistgen.checkpoint import Weights
from mnistgen.errors import MnistgenError

BLOCK = 256  # images per latent draw and per decode call
STREAM_GENERATE = 10  # keeps generation's random stream apart from training's
STREAM_TRUNCATE = 11  # the redraws that replace draws outside a truncation radius
TRUNCATION_POOL = 64  # candidates drawn per needed latent and round when truncating
TRUNCATION_ROUNDS = 8  # rounds before a truncation radius is declared too small for the latent
UNLABELLED = -1  # the label of an unconditional model's samples
UNLABELLED_KEY = 1_000  # stream key for unlabelled samples (labels are < 256)
IMAGE_SIDE = 28
MAX_FILTER_ATTEMPTS = 200  # redraw chunks per block before a confidence filter gives up
REDRAW_CHUNK = 32  # candidates decoded per redraw when a block misses only a few images
MIN_TRIES_FOR_VERDICT = 1_000  # candidates seen before a hopeless acceptance rate is declared
MIN_ACCEPTANCE = 0.01  # below 1% accepted, --min-confidence is refused as impossible


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float (B, 1, 28, 28) in [-1, 1] -> uint8 (B, 28, 28)."""
    return np.clip(np.rint((images[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def block_latents(
    seed: int,
    label: int,
    block: int,
    latent: int,
    temperature: float = 1.0,
    attempt: int = 0,
    truncation: Optional[float] = None,
) -> np.ndarray:
    """float32 (BLOCK, latent): prior samples for images [block*BLOCK, (block+1)*BLOCK) of `label`
    (attempt > 0: the redraws a confidence filter asks for). With a truncation radius R, standard-
    normal draws longer than R are replaced, in order, by the next draws of the block's own
    redraw stream that fall inside (the "truncation trick", Brock et al., ICLR 2019): still a
    function of (seed, label, block, attempt) only."""
    key = UNLABELLED_KEY if label == UNLABELLED else label
    rng = np.random.default_rng([seed, STREAM_GENERATE, key, block] + ([attempt] if attempt else []))
    eps = rng.standard_normal((BLOCK, latent), dtype=np.float32)
    if truncation is not None:
        eps = _truncate(eps, truncation, np.random.default_rng([seed, STREAM_TRUNCATE, key, block, attempt]))
    return eps * np.float32(temperature)


def _truncate(eps: np.ndarray, radius: float, redraws: np.random.Generator) -> np.ndarray:
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
            f"--truncation {radius:g} keeps almost no draws of a {eps.shape[1]}-dimensional latent "
            f"(their typical length is {np.sqrt(eps.shape[1]):.1f}): use a larger radius"
        )
    return eps


@dataclass(frozen=True)
class Prior:
    """Where latents come from: N(0, I) scaled by the temperature ("standard"), or the Gaussian
    fitted to the training data's aggregate posterior, per label ("fitted", from the model card)."""

    kind: str = "standard"
    table: Optional[dict] = None  # label key -> {"mean": [d], "cholesky": [[d x d]]}
    truncation: Optional[float] = None  # redraw standard-normal draws longer than this (None: keep all)

    def apply(self, eps: np.ndarray, label: int) -> np.ndarray:
        """Map standard-normal draws (already scaled by the temperature) to this prior."""
        if self.kind == "standard":
            return eps
        entry = self.table["all" if label == UNLABELLED else str(label)]
        return (np.asarray(entry["mean"], np.float32) + eps @ np.asarray(entry["cholesky"], np.float32).T).astype(
            np.float32
        )


PRIORS = ("auto", "standard", "fitted")
DEFAULT_TEMPERATURE = 1.0
DEFAULT_SHARPEN = 1.0  # the decoder's mean image, as trained


def recommended(weights: Weights, key: str, explicit, default):
    """An explicit sampling setting, else the one the model card's "sampling" section recommends
    (chosen from evaluate's figures when the model was shipped), else `default`."""
    if explicit is not None:
        return explicit
    return weights.card.get("sampling", {}).get(key, default)


def default_temperature(weights: Weights, temperature: Optional[float]) -> float:
    return float(recommended(weights, "temperature", temperature, DEFAULT_TEMPERATURE))


def default_sharpen(weights: Weights, sharpen: Optional[float]) -> float:
    return float(recommended(weights, "sharpen", sharpen, DEFAULT_SHARPEN))


def make_prior(weights: Weights, kind: str = "auto", truncation: Optional[float] = None) -> Prior:
    """`auto` takes the prior the model card recommends, else standard. truncation: a radius for
    the standard-normal draws, 0 for none, None for the card's recommendation (else none)."""
    kind = recommended(weights, "prior", None if kind == "auto" else kind, "standard")
    radius = float(recommended(weights, "truncation", truncation, 0)) or None
    if kind == "standard":
        return Prior(truncation=radius)
    fitted = weights.card.get("latent_stats", {}).get("fitted")
    if not fitted:
        raise MnistgenError(
            f"--prior fitted: model {weights.name}'s card has no fitted prior; retrain it with this mnistgen, or use --prior standard"
        )
    return Prior("fitted", fitted, radius)


def latents(
    seed: int, label: int, block: int, latent: int, temperature: float = 1.0, attempt: int = 0, prior: Prior = Prior()
) -> np.ndarray:
    """float32 (BLOCK, latent): the latents of images [block*BLOCK, (block+1)*BLOCK) of `label`."""
    return prior.apply(block_latents(seed, label, block, latent, temperature, attempt, prior.truncation), label)


def one_hot(labels, num_classes: int) -> np.ndarray:
    """int labels (B,) -> float32 (B, num_classes)."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def decode(model, z: np.ndarray, onehot: Optional[np.ndarray]) -> np.ndarray:
    """Decode float32 latents (B, d) [with float labels (B, C): one-hot, or a blend] eagerly -> uint8 (B, 28, 28)."""
    from mnistgen.model import paddle

    model.eval()
    with paddle.no_grad():
        label = paddle.to_tensor(onehot) if onehot is not None else None
        out = model.decoder(paddle.to_tensor(z), label)  # (B, 1, 28, 28)
    return to_uint8(out.numpy())


def decode_all(decoder, z: np.ndarray, onehot: Optional[np.ndarray] = None) -> np.ndarray:
    """Decode any number of latents in whole blocks of BLOCK (padding the last), so each image's
    pixels are what generate would give for the same z, whatever the count."""
    n = len(z)
    padded = -(-n // BLOCK) * BLOCK
    z = np.concatenate([z, np.zeros((padded - n, z.shape[1]), np.float32)]).astype(np.float32)
    if onehot is not None:
        onehot = np.concatenate([onehot, np.repeat(onehot[-1:], padded - n, axis=0)]).astype(np.float32)
    out = [
        decoder(z[i : i + BLOCK], None if onehot is None else onehot[i : i + BLOCK]) for i in range(0, padded, BLOCK)
    ]
    return np.concatenate(out)[:n]


def load_model(weights: Weights, sharpen: float = DEFAULT_SHARPEN):
    """Build the Paddle model described by a checked weights file and load its tensors
    (with the decoder's output sharpened by `sharpen`, see model.sharpen)."""
    from mnistgen import model as model_lib

    net = model_lib.build(weights.config)
    model_lib.load_arrays(net, weights.arrays())
    if sharpen != DEFAULT_SHARPEN:
        model_lib.sharpen(net.decoder, sharpen)
    net.eval()
    return net


class EagerDecoder:
    """Paddle eager mode: works on every device; the path used on a GPU."""

    name = "eager"
    precision = "fp32"
    fallback_reason = None  # why the predictor, when it was wanted, could not be used (see make_decoder)

    def __init__(self, model, sharpen: float = DEFAULT_SHARPEN):
        self.model, self.config, self.sharpen = model, model.cfg, sharpen

    def __call__(self, z: np.ndarray, onehot: Optional[np.ndarray]) -> np.ndarray:
        return decode(self.model, z, onehot)


class PredictorDecoder:
    """Paddle Inference with oneDNN on the CPU: the decoder exported once per weights file and
    sharpening (cached under $MNISTGEN_DATA/inference) and run as a static predictor, about 5-7x
    faster than eager mode on two cores; precision "bf16" about 1.3x faster again on CPUs with AMX,
    pixels within a few levels of fp32."""

    name = "predictor"

    def __init__(
        self, weights: Weights, model, threads: int, precision: str = "fp32", sharpen: float = DEFAULT_SHARPEN
    ):
        from mnistgen import predictor
        from mnistgen.model import ExportedDecoder, paddle

        self.config, self.precision, self.sharpen = weights.config, precision, sharpen

        def build():
            specs = [paddle.static.InputSpec([None, weights.config.latent], "float32", "z")]
            if weights.config.conditional:
                specs.append(paddle.static.InputSpec([None, weights.config.num_classes], "float32", "onehot"))
            return ExportedDecoder(model.decoder), specs

        tag = "" if sharpen == DEFAULT_SHARPEN else f"-sharpen{sharpen:g}"
        self.run = predictor.Predictor(predictor.exported("decoder", weights.sha256, build, tag), threads, precision)

    def __call__(self, z: np.ndarray, onehot: Optional[np.ndarray]) -> np.ndarray:
        inputs = {"z": z, "onehot": onehot} if self.config.conditional else {"z": z}
        return to_uint8(self.run(**inputs))  # (B, 1, 28, 28) -> (B, 28, 28)


def make_decoder(
    weights: Weights,
    device_name: str,
    backend: str = "auto",
    threads: Optional[int] = None,
    precision: str = "auto",
    sharpen: Optional[float] = None,
):
    """The fastest decoder for the device: the Paddle Inference predictor on the CPU, eager on a GPU.

    backend "eager" forces eager mode; "auto" falls back to eager if the predictor cannot be built.
    precision applies to the predictor (eager decoding is fp32); sharpen None takes the card's.
    """
    from mnistgen.predictor import failure_reason, resolve_precision
    from mnistgen.runtime import usable_cpus

    sharpen = default_sharpen(weights, sharpen)
    model = load_model(weights, sharpen)
    if backend == "eager" or not device_name.startswith("cpu"):
        return EagerDecoder(model, sharpen)
    try:
        return PredictorDecoder(weights, model, threads or usable_cpus(), resolve_precision(precision), sharpen)
    except MnistgenError:
        raise
    except Exception as exc:  # a Paddle built without oneDNN, an export this Paddle cannot make
        if backend == "predictor":
            raise
        decoder = EagerDecoder(model, sharpen)
        decoder.fallback_reason = failure_reason(exc)
        return decoder


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


class ConfidenceFilter:
    """Keeps only samples a classifier assigns to their label with probability >= threshold.

    A block is decoded and judged whole; its rejected images are then replaced, in index order, by
    the accepted candidates of redraw chunks from the streams (seed, label, block, attempt), each
    chunk decoded at a fixed size (REDRAW_CHUNK, or a whole BLOCK when many are missing). So the
    image at an index depends only on its block - not on batch size, shard or resume - and a
    block with a few rejects costs about an eighth more, not a second full decode.
    """

    def __init__(self, judge, threshold: float, max_attempts: int = MAX_FILTER_ATTEMPTS):
        self.judge, self.threshold, self.max_attempts = judge, threshold, max_attempts
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
        for attempt in range(1, self.max_attempts + 1):
            if not len(missing):
                return z, images
            if self.tried >= MIN_TRIES_FOR_VERDICT and self.acceptance < MIN_ACCEPTANCE:
                break
            size = REDRAW_CHUNK if len(missing) <= REDRAW_CHUNK // 4 else BLOCK
            z_new = latents(seed, label, block, d, temperature, attempt, prior)[:size]
            images_new = decoder(z_new, onehot[:size] if onehot is not None else None)
            take = np.flatnonzero(self.accept(images_new, label))[: len(missing)]
            z[missing[: len(take)]], images[missing[: len(take)]] = z_new[take], images_new[take]
            missing = missing[len(take) :]
        if not len(missing):
            return z, images
        raise MnistgenError(
            f"--min-confidence {self.threshold}: only {self.acceptance:.2%} of samples of label {label} pass after {self.tried} tries; lower --min-confidence or use a better model"
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


def generate(
    decoder,
    labels: list[int],
    count: int,
    seed: int,
    temperature: float = 1.0,
    shard: Shard = Shard(0, 1),
    prior: Prior = Prior(),
    confidence: Optional[ConfidenceFilter] = None,
) -> Iterator[Batch]:
    """Generate `count` images per label (this shard's part), block by block."""
    for label, block, lo, hi in plan(labels, count, shard):
        yield block_batch(decoder, seed, label, block, lo, hi, temperature, confidence=confidence, prior=prior)


def generate_arrays(
    decoder,
    labels: list[int],
    count: int,
    seed: int,
    temperature: float = 1.0,
    prior: Prior = Prior(),
    confidence: Optional[ConfidenceFilter] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All of `generate` at once: images uint8 (N, 28, 28), labels int64 (N,) (UNLABELLED for a
    VAE), latents float32 (N, d), in generate's label-major order."""
    batches = list(generate(decoder, labels, count, seed, temperature, prior=prior, confidence=confidence))
    return (
        np.concatenate([b.images for b in batches]),
        np.concatenate([np.full(len(b.images), b.label, np.int64) for b in batches]),
        np.concatenate([b.z for b in batches]),
    )
