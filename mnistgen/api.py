"""The Python API: load a model, then generate, decode, interpolate and encode numpy arrays.

    import mnistgen
    model = mnistgen.load("cvae")                          # a name, a .safetensors path or a run dir
    images, labels, z = model.generate(digit=7, count=100, seed=0)
    frames = model.interpolate(digits=[3, 8], steps=16)     # uint8 (F, 28, 28)
    means, stds = model.encode(images, labels)              # float32 (N, d) each

The CLI is built on the same functions (sample.py, explore.py); images here are uint8
(N, 28, 28) with MNIST's white-on-black convention, labels int64 (N,), latents float32 (N, d).
Pixels equal what `mnistgen generate` writes for the same seed, digit and index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from mnistgen import checkpoint, explore, sample
from mnistgen.errors import MnistgenError
from mnistgen.runtime import Device, select_device


class Model:
    """A loaded, checked model and the fastest decoder for its device."""

    def __init__(self, weights: checkpoint.Weights, device: Union[Device, str] = Device.auto):
        self.weights = weights
        self.device = select_device(device)
        self._net = None
        self._decoder = None

    # -- what it is
    @property
    def name(self) -> str:
        return self.weights.name

    @property
    def config(self):
        """The `ModelConfig` (kind, latent, channels, num_classes)."""
        return self.weights.config

    @property
    def card(self) -> dict:
        """The JSON model card: training command, metrics, latent statistics."""
        return self.weights.card

    @property
    def sha256(self) -> str:
        return self.weights.sha256

    @property
    def net(self):
        """The Paddle `VAE` layer (encoder and decoder), loaded on first use."""
        if self._net is None:
            self._net = sample.load_model(self.weights)
        return self._net

    @property
    def decoder(self):
        if self._decoder is None:
            self._decoder = sample.make_decoder(self.weights, self.device)
        return self._decoder

    def __repr__(self) -> str:
        c = self.config
        return f"<mnistgen.Model {self.name}: {c.kind}, latent {c.latent}, {self.device}>"

    # -- sampling
    def generate(
        self,
        digit: Optional[Union[int, Sequence[int]]] = None,
        count: int = 100,
        seed: int = 0,
        temperature: Optional[float] = None,
        prior: str = "auto",
        truncation: Optional[float] = None,
        min_confidence: Optional[float] = None,
        classifier: str = "classifier",
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`count` images per digit (all digits by default; an unconditional model ignores none and
        refuses a digit). `prior`: "standard", "fitted" or "auto"; `temperature`, `truncation` (a radius,
        0 for none) and `min_confidence` (keep samples `classifier` assigns to their digit with at least
        this probability, 0 for all): None takes the card's choice, as generate does. Returns images uint8 (N, 28, 28), labels int64 (N,) (-1 when unlabelled),
        latents float32 (N, d)."""
        if count < 1:
            raise MnistgenError(f"count must be at least 1, got {count}")
        digits = None if digit is None else ([int(digit)] if np.isscalar(digit) else [int(d) for d in digit])
        from mnistgen.generate import labels_for

        temperature = sample.default_temperature(self.weights, temperature)
        confidence = None
        if sample.recommended(self.weights, "min_confidence", min_confidence, 0):
            from mnistgen import classifier as clf

            confidence = clf.confidence_filter(
                self.weights, min_confidence, checkpoint.inspect(classifier), self.device
            )
        return sample.generate_arrays(
            self.decoder,
            labels_for(self.weights, digits),
            count,
            seed,
            temperature,
            sample.make_prior(self.weights, prior, truncation),
            confidence,
        )

    def decode(self, z: np.ndarray, labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """Latents float (N, d) [+ labels (N,) for a CVAE] -> uint8 images (N, 28, 28)."""
        z = np.asarray(z, dtype=np.float32).reshape(-1, self.config.latent)
        onehot = None
        if self.config.conditional:
            if labels is None:
                raise MnistgenError(f"model {self.name} is conditional: pass labels")
            onehot = sample.one_hot(np.resize(np.asarray(labels), len(z)), self.config.num_classes)
        return sample.decode_all(self.decoder, z, onehot)

    def interpolate(
        self,
        digits: Optional[Sequence[int]] = None,
        points=None,
        digit: Optional[int] = None,
        steps: int = 16,
        method: str = "lerp",
        loop: bool = False,
        seed: Optional[int] = None,
    ) -> np.ndarray:
        """Frames uint8 (F, 28, 28) along a path through digits or latent points (see explore.walk)."""
        if digits is None and points is None:
            digits = list(range(self.config.num_classes))
        z, onehot = explore.walk(
            self.weights, steps, method, loop, digits=digits, points=points, label=digit, seed=seed
        )
        return sample.decode_all(self.decoder, z, onehot)

    def encode(self, images: np.ndarray, labels: Optional[Sequence[int]] = None) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (N, 28, 28) [+ labels for a CVAE] -> means and standard deviations, float32 (N, d)."""
        images = np.asarray(images, dtype=np.uint8).reshape(-1, 28, 28)
        labels = None if labels is None else np.resize(np.asarray(labels, dtype=np.int64), len(images))
        return explore.encode(self.net, images, labels if self.config.conditional else None)


def load(model: str = "cvae", device: Union[Device, str] = Device.auto) -> Model:
    """Load a model by name (shipped, or in $MNISTGEN_WEIGHTS), .safetensors path or run directory."""
    return Model(checkpoint.inspect(str(model)), device)


def models() -> list[dict]:
    """Every model mnistgen can find by name: name, kind, latent, epochs, test loss, sha256, path."""
    found = []
    for name in checkpoint.available_names():
        try:
            w = checkpoint.inspect(name)
        except MnistgenError as exc:
            found.append({"name": name, "error": str(exc)})
            continue
        metrics, training = w.card.get("metrics", {}), w.card.get("training", {})
        found.append(
            {
                "name": name,
                "kind": w.config.kind,
                "latent": getattr(w.config, "latent", None),
                "epochs": training.get("epochs_done"),
                "test_loss": metrics.get("test_loss"),
                "sha256": w.sha256,
                "path": str(w.path),
            }
        )
    return found
