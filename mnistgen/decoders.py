"""Decoders: latents (and one-hot labels) in, uint8 images out, in Paddle eager mode or through a
Paddle Inference predictor. What to decode is decided elsewhere (sampling.py, sample.py); how to run the
network here.
"""

from __future__ import annotations

import hashlib
import shutil
from typing import NamedTuple, Optional

import numpy as np

from mnistgen import classifier, predictor
from mnistgen import model as model_lib
from mnistgen.checkpoint import Weights
from mnistgen.data import CACHE_FIX, cache_problem, one_hot, to_unit_range
from mnistgen.errors import MnistgenError
from mnistgen.runtime import failure_reason, import_paddle, place_of, usable_cpus
from mnistgen.sample import BLOCK, ConfidenceFilter, Sampler
from mnistgen.sampling import DEFAULT_SHARPEN, UNVERIFIED, Sampling, resolve_sampling


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float (B, 1, 28, 28) in [-1, 1] -> uint8 (B, 28, 28)."""
    return np.clip(np.rint((images[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


def decode(model, z: np.ndarray, onehot: Optional[np.ndarray]) -> np.ndarray:
    """Decode float32 latents (B, d) [with float labels (B, C): one-hot, or a blend] eagerly -> uint8 (B, 28, 28)."""
    paddle = import_paddle()
    model.eval()
    place = place_of(model)  # the model's device, whatever the process's is now
    with paddle.no_grad():
        label = paddle.to_tensor(onehot, place=place) if onehot is not None else None
        out = model.decoder(paddle.to_tensor(z, place=place), label)  # (B, 1, 28, 28)
    return to_uint8(out.numpy())


def pad_rows(rows: np.ndarray, total: int, repeat_last: bool = False) -> np.ndarray:
    """`rows` made `total` long for a whole block: zeros after them, or copies of the last row (a
    label or one-hot row, so the padding is a valid input too). Paddle's CPU kernels round some
    batch sizes differently, so a row's result never depends on how many came with it."""
    short = total - len(rows)
    if short <= 0:
        return rows
    tail = np.repeat(rows[-1:], short, axis=0) if repeat_last else np.zeros((short, *rows.shape[1:]), rows.dtype)
    return np.concatenate([rows, tail])


def decode_all(decoder, z: np.ndarray, onehot: Optional[np.ndarray] = None) -> np.ndarray:
    """Decode any number of latents in whole blocks of BLOCK (padding the last), so each image's
    pixels are what generate would give for the same z, whatever the count."""
    n = len(z)
    padded = -(-n // BLOCK) * BLOCK
    z = pad_rows(np.asarray(z, np.float32), padded)
    if onehot is not None:
        onehot = pad_rows(np.asarray(onehot, np.float32), padded, repeat_last=True)
    out = [
        decoder(z[i : i + BLOCK], None if onehot is None else onehot[i : i + BLOCK]) for i in range(0, padded, BLOCK)
    ]
    return np.concatenate(out)[:n]


def load_model(weights: Weights, sharpen: float = DEFAULT_SHARPEN):
    """Build the Paddle model described by a checked weights file and load its tensors
    (with the decoder's output sharpened by `sharpen`, see model.sharpen)."""
    net = model_lib.build(weights.config)
    model_lib.load_arrays(net, weights.arrays())
    if sharpen != DEFAULT_SHARPEN:
        model_lib.sharpen(net.decoder, sharpen)
    net.eval()
    return net


class DecoderKey(NamedTuple):
    """What tells apart two decoders of one weights file, decided here once: the sharpening, which
    changes the decoder's weights and so its export (`tag`), and the precision, which changes only how
    a predictor runs that export. api.Model keeps one decoder per key; the predictor cache one export per tag."""

    sharpen: float
    precision: str

    @classmethod
    def of(cls, sampling: Sampling) -> DecoderKey:
        return cls(sampling.sharpen, sampling.precision)

    @property
    def tag(self) -> str:
        """The export's name after the weights' sha256: none for the plain decoder (the name exports had
        before sharpening existed), else `-sharpen3` (`:g`, so existing caches keep being found), or
        the exact value (`-sharpen1.2345671`) where `:g`'s six digits would name two sharpenings alike."""
        if self.sharpen == DEFAULT_SHARPEN:
            return ""
        short = f"{self.sharpen:g}"
        return f"-sharpen{short if float(short) == self.sharpen else repr(float(self.sharpen))}"


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
        paddle = import_paddle()
        self.config, self.precision, self.sharpen = weights.config, precision, sharpen

        def build():
            specs = [paddle.static.InputSpec([None, weights.config.latent], "float32", "z")]
            if weights.config.conditional:
                specs.append(paddle.static.InputSpec([None, weights.config.num_classes], "float32", "onehot"))
            return model_lib.ExportedDecoder(model.decoder), specs

        tag = DecoderKey(sharpen, precision).tag
        self.run = predictor.Predictor(predictor.exported("decoder", weights.sha256, build, tag), threads, precision)

    def __call__(self, z: np.ndarray, onehot: Optional[np.ndarray]) -> np.ndarray:
        inputs = {"z": z, "onehot": onehot} if self.config.conditional else {"z": z}
        return to_uint8(self.run(**inputs))  # (B, 1, 28, 28) -> (B, 28, 28)


def make_decoder(
    weights: Weights,
    device_name: str,
    sampling: Optional[Sampling] = None,
    backend: str = "auto",
    threads: Optional[int] = None,
):
    """The fastest decoder for the device: the Paddle Inference predictor on the CPU, eager on a GPU.

    `sampling` gives the precision (predictor only; eager decoding is fp32) and the sharpening;
    None takes the model card's. backend "eager" forces eager mode; "auto" falls back to eager if
    the predictor cannot be built.
    """
    sampling = sampling or resolve_sampling(weights, UNVERIFIED)
    model = load_model(weights, sampling.sharpen)
    if backend == "eager" or not device_name.startswith("cpu"):
        return EagerDecoder(model, sampling.sharpen)
    try:
        precision = predictor.resolve_precision(sampling.precision)
        return PredictorDecoder(weights, model, threads or usable_cpus(), precision, sampling.sharpen)
    except MnistgenError:
        raise
    except Exception as exc:  # a Paddle built without oneDNN, an export this Paddle cannot make
        if backend == "predictor":
            raise
        decoder = EagerDecoder(model, sampling.sharpen)
        # the export goes into the cache: one it cannot write is the cause of a failed write, with its fix
        problem = cache_problem() if isinstance(exc, OSError) else None
        decoder.fallback_reason = f"{problem}: {CACHE_FIX}" if problem else failure_reason(exc)
        return decoder


def confidence_filter(sampling: Sampling, device_name: str) -> Optional[ConfidenceFilter]:
    """The filter a resolved sampling spec asks for (its verifier and threshold), None when it
    keeps every sample."""
    if not sampling.verified:
        return None
    judge = classifier.verifier(sampling.classifier, device_name, sampling.precision)
    return ConfidenceFilter(judge, sampling.min_confidence, card=sampling.min_confidence_card)


def make_sampler(
    weights: Weights, sampling: Sampling, device_name: str, backend: str = "auto", threads: Optional[int] = None
) -> Sampler:
    """The decoder (on `threads` CPU threads, default all usable) and the confidence filter that a
    resolved sampling spec asks for."""
    decoder = make_decoder(weights, device_name, sampling, backend, threads)
    return Sampler(decoder, sampling, confidence_filter(sampling, device_name))


# -- a model in training, through the predictor ---------------------------------------------------

# Below this many images a pass (test loss, latent statistics, sample grid) stays in eager Paddle.
# Measured on the project's 2-core machine (loaded, Paddle 3.3.1): exporting a graph costs 0.4-0.6 s
# the first time in a process and 0.07-0.1 s for the next weights (the traced program is reused); the
# predictor then saves about 3 ms per image on the whole loss graph, 1.5 ms decoding and 0.45 ms
# encoding (eager takes 4x-5x as long), so it wins from about 200 images (the 10x20 sample grid's count).
FAST_MIN_IMAGES = 200


def weights_sha256(model) -> str:
    """sha256 of a model's current parameters (names and float32 bytes): the key of its exports."""
    digest = hashlib.sha256()
    for name, array in sorted(model_lib.state_arrays(model).items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


class InferenceVAE:
    """A model's current weights as Paddle Inference predictors (oneDNN, fp32, `threads` threads): the
    loss per image, the encoder and the decoder, each exported on first use via predictor.exported
    (keyed by the weights' sha256) and the export removed from the cache once its predictor is made,
    since the next weights need another. For training's evaluations; results match eager Paddle to
    float rounding."""

    def __init__(self, model, threads: Optional[int] = None):
        self.model, self.cfg = model, model.cfg
        self.threads = threads or usable_cpus()
        self.sha256 = weights_sha256(model)
        self._predictors: dict = {}

    def _predictor(self, kind: str):
        if kind not in self._predictors:
            paddle = import_paddle()
            spec = paddle.static.InputSpec
            cfg = self.cfg
            x = spec([None, 1, cfg.image_size, cfg.image_size], "float32", "x")
            labels = [spec([None, cfg.num_classes], "float32", "onehot")] if cfg.conditional else []
            graphs = {
                "loss": lambda: (
                    model_lib.ExportedLossTerms(self.model),
                    [x, spec([None, cfg.latent], "float32", "noise")],
                ),
                "encoder": lambda: (model_lib.ExportedEncoder(self.model.encoder), [x]),
                "decoder": lambda: (
                    model_lib.ExportedDecoder(self.model.decoder),
                    [spec([None, cfg.latent], "float32", "z")],
                ),
            }

            def build():
                layer, specs = graphs[kind]()
                return layer, specs + labels

            self.model.eval()
            stem = predictor.exported(f"training-{kind}", self.sha256, build)
            try:
                skipped = predictor.ENCODER_SKIPPED_PASSES if kind != "decoder" else ()
                self._predictors[kind] = predictor.Predictor(stem, self.threads, "fp32", skipped_passes=skipped)
            finally:
                shutil.rmtree(stem.parent, ignore_errors=True)
                stem.parent.with_name(f".{stem.parent.name}.lock").unlink(missing_ok=True)
        return self._predictors[kind]

    def _labels(self, labels: Optional[np.ndarray]) -> dict:
        return {"onehot": one_hot(labels, self.cfg.num_classes)} if self.cfg.conditional else {}

    def loss_terms(self, images: np.ndarray, labels: Optional[np.ndarray], noise: np.ndarray) -> np.ndarray:
        """uint8 images (B, 28, 28) [+ labels (B,)] and noise (B, d) -> (B, 2): reconstruction and KL per image."""
        run = self._predictor("loss")
        return run(x=to_unit_range(images), noise=noise, **self._labels(labels))

    def encode(self, images: np.ndarray, labels: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (N, 28, 28) [+ labels] -> encoder means and standard deviations (N, d) each."""
        out = self._predictor("encoder")(x=to_unit_range(images), **self._labels(labels))
        d = self.cfg.latent
        return out[:, :d], np.exp(0.5 * out[:, d:])

    def decode(self, z: np.ndarray, onehot: Optional[np.ndarray]) -> np.ndarray:
        """float32 latents (B, d) [+ one-hot labels (B, C)] -> uint8 images (B, 28, 28)."""
        inputs = {"z": z, "onehot": onehot} if self.cfg.conditional else {"z": z}
        return to_uint8(self._predictor("decoder")(**inputs))


def training_inference(model, images: int, device_name: str = "cpu") -> Optional[InferenceVAE]:
    """The predictor path for a pass over `images` images of a model in training, or None for eager
    Paddle (on a GPU, or below FAST_MIN_IMAGES). It builds its predictors lazily: a caller that must
    not fail catches their exceptions and goes eager."""
    if images < FAST_MIN_IMAGES or not device_name.startswith("cpu"):
        return None
    return InferenceVAE(model)
