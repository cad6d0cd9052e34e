"""Paddle layers of the tutorial's conv VAE and CVAE, and their loss: per batch (training's step) and
its mean over a data split (`test_loss`: training's held-out loss and evaluate's test-set loss). No I/O here.

Architecture (from the tutorial the project grew from):
  encoder: 4x4 stride-2 convs 1->32->64 with leaky ReLU, then dense mean and log-variance heads;
  decoder: z -> 7*7*32 -> 4x4 stride-2 conv-transposes 32->64->32 -> 3x3 conv -> tanh.
The CVAE maps the one-hot label through a dense layer to a 28x28 plane stacked on the image,
and concatenates the one-hot label to z. The tutorial writes its dense layers as 1x1
convolutions on 1x1 maps; `nn.Linear` is the same function and faster.

Parameter names here are the tensor names in weights files; `ModelConfig.param_shapes`
must list exactly the same names and shapes.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from mnistgen.config import KERNEL, OUT_KERNEL, Likelihood, ModelConfig
from mnistgen.data import one_hot, to_unit_range
from mnistgen.runtime import import_paddle

paddle = import_paddle()
nn = paddle.nn
F = paddle.nn.functional

STRIDE = 2
EVAL_BATCH = 1000  # test-set forward passes are batched; no gradients, so memory is small
STREAM_EVAL = 2  # test_loss's noise: a random stream apart from training's (train.STREAM_*)
PAD = 1  # with a 4x4 kernel and stride 2, padding 1 halves / doubles the side exactly


class Encoder(nn.Layer):
    """q(z | x[, y]): returns the mean and log-variance of a diagonal Gaussian."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c, side = cfg.channels, cfg.feature_side
        if cfg.conditional:
            self.label = nn.Linear(cfg.num_classes, cfg.image_size * cfg.image_size)
        self.conv1 = nn.Conv2D(2 if cfg.conditional else 1, c, KERNEL, STRIDE, PAD)
        self.conv2 = nn.Conv2D(c, 2 * c, KERNEL, STRIDE, PAD)
        self.mean = nn.Linear(2 * c * side * side, cfg.latent)
        self.logvar = nn.Linear(2 * c * side * side, cfg.latent)

    def forward(self, x, onehot=None):
        if self.cfg.conditional:
            plane = self.label(onehot).reshape([-1, 1, self.cfg.image_size, self.cfg.image_size])  # (B, 1, 28, 28)
            x = paddle.concat([x, plane], axis=1)  # (B, 2, 28, 28)
        h = F.leaky_relu(self.conv1(x))  # (B, 32, 14, 14)
        h = F.leaky_relu(self.conv2(h))  # (B, 64, 7, 7)
        h = h.flatten(1)  # (B, 3136)
        return self.mean(h), self.logvar(h)  # (B, d), (B, d)


class Decoder(nn.Layer):
    """p(x | z[, y]): returns images in [-1, 1]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c, side = cfg.channels, cfg.feature_side
        extra = cfg.num_classes if cfg.conditional else 0
        self.fc = nn.Linear(cfg.latent + extra, c * side * side)
        self.up1 = nn.Conv2DTranspose(c, 2 * c, KERNEL, STRIDE, PAD)
        self.up2 = nn.Conv2DTranspose(2 * c, c, KERNEL, STRIDE, PAD)
        self.out = nn.Conv2D(c, 1, OUT_KERNEL, 1, OUT_KERNEL // 2)

    def head(self, z, onehot=None):
        """The last layer's output before its nonlinearity (logits for a Bernoulli decoder)."""
        if self.cfg.conditional:
            z = paddle.concat([z, onehot], axis=1)  # (B, d + 10)
        side = self.cfg.feature_side
        h = F.leaky_relu(self.fc(z)).reshape([-1, self.cfg.channels, side, side])  # (B, 32, 7, 7)
        h = F.leaky_relu(self.up1(h))  # (B, 64, 14, 14)
        h = F.leaky_relu(self.up2(h))  # (B, 32, 28, 28)
        return self.out(h)  # (B, 1, 28, 28)

    def forward(self, z, onehot=None):
        """Images in [-1, 1]: tanh (Gaussian decoder, the tutorial) or 2 * sigmoid - 1 (Bernoulli)."""
        return to_image(self.head(z, onehot), self.cfg.likelihood)  # (B, 1, 28, 28)


def sharpen(decoder: Decoder, factor: float) -> None:
    """Scale the last layer so the head becomes factor * head (the layer is linear). For a Bernoulli
    decoder each pixel is then sigmoid(factor * logit): its probability pushed towards 0 or 1, as
    MNIST's nearly binary strokes are, instead of the blurry posterior mean; factor 1 changes nothing."""
    for param in (decoder.out.weight, decoder.out.bias):
        param.set_value(param.numpy() * factor)


class Output(NamedTuple):
    """What one likelihood (config.LIKELIHOODS) makes of the decoder's head."""

    image: Callable  # head -> images in [-1, 1]
    reconstruction: Callable  # (x in [-1, 1], head) -> each image's reconstruction term, (B,), summed over pixels


def _sigmoid_image(head):
    return 2 * F.sigmoid(head) - 1


def _squared_error(x, head):
    return ((x - paddle.tanh(head)) ** 2).sum(axis=[1, 2, 3])


def _cross_entropy(x, head):
    target = (x + 1) * 0.5  # [0, 1] pixels, in nats
    return F.binary_cross_entropy_with_logits(head, target, reduction="none").sum(axis=[1, 2, 3])


# The one place a likelihood is turned into arithmetic: the decoder's images and the loss read it alike.
OUTPUTS = {
    Likelihood.gaussian.value: Output(paddle.tanh, _squared_error),  # the tutorial's
    Likelihood.bernoulli.value: Output(_sigmoid_image, _cross_entropy),
}


def to_image(head, likelihood: str):
    return OUTPUTS[likelihood].image(head)


class ExportedDecoder(nn.Layer):
    """The decoder behind a plain `forward(self, z, onehot=None)`, for `paddle.jit.save`
    (Paddle's export inspects the signature and needs `self` as the first name)."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, z, onehot=None):
        return self.decoder(z, onehot)


class VAE(nn.Layer):
    """Encoder + decoder with the reparameterisation z = mean + noise * exp(logvar / 2)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x, onehot, noise):
        """Returns the decoder's head (pre-nonlinearity), the mean and the log-variance."""
        mean, logvar = self.encoder(x, onehot)  # (B, d), (B, d)
        z = mean + noise * paddle.exp(0.5 * logvar)  # (B, d)
        return self.decoder.head(z, onehot), mean, logvar


def vae_loss(x, head, mean, logvar, likelihood: str = "gaussian", kl_weight: float = 1.0):
    """Negative ELBO: reconstruction + KL(q(z|x) || N(0, I)).

    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, eq. 10 (the Gaussian KL
    in closed form). Reconstruction: the tutorial's summed squared error on [-1, 1] pixels
    (Gaussian decoder), or binary cross-entropy on [0, 1] pixels (Bernoulli decoder, in nats).
    Both terms are summed over pixels / latent dims and averaged over the batch. `kl_weight`
    scales the KL in the returned loss only (KL warm-up, Bowman et al. 2016). Returns
    (loss, reconstruction, kl) as scalar tensors.
    """
    rec, kl = per_image_terms(x, head, mean, logvar, likelihood)
    rec, kl = rec.mean(), kl.mean()
    return rec + kl_weight * kl, rec, kl


def per_image_terms(x, head, mean, logvar, likelihood: str = "gaussian"):
    """vae_loss's reconstruction and KL for each image, (B,) each, before the batch mean."""
    rec = OUTPUTS[likelihood].reconstruction(x, head)
    kl = (-0.5 * (1 + logvar - mean**2 - paddle.exp(logvar))).sum(axis=1)
    return rec, kl


class ExportedLossTerms(nn.Layer):
    """The whole VAE and its loss per image, for `paddle.jit.save`: (x, noise[, onehot]) -> (B, 2), each
    image's reconstruction term and KL, with the reparameterisation noise given (fixed) as an input."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x, noise, onehot=None):
        head, mean, logvar = self.vae(x, onehot, noise)
        rec, kl = per_image_terms(x, head, mean, logvar, self.vae.cfg.likelihood)
        return paddle.stack([rec, kl], axis=1)  # (B, 2)


class ExportedEncoder(nn.Layer):
    """The encoder for `paddle.jit.save`: (x[, onehot]) -> (B, 2d), the mean and log-variance side by side."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x, onehot=None):
        mean, logvar = self.encoder(x, onehot)
        return paddle.concat([mean, logvar], axis=1)  # (B, 2d)


def inputs(images, labels, cfg: ModelConfig, place=None):
    """uint8 images (B, 28, 28) [+ int labels (B,)] -> the model's inputs on `place` (default: the
    process's device): images in [-1, 1] (B, 1, 28, 28) and, for a CVAE, one-hot labels (B, C); None for a VAE."""
    x = paddle.to_tensor(to_unit_range(images), place=place)
    y = paddle.to_tensor(one_hot(labels, cfg.num_classes), place=place) if cfg.conditional else None
    return x, y


def test_loss(model, split, seed: int = 0, inference=None) -> dict:
    """Mean negative ELBO, reconstruction and KL per image on `split`, with noise fixed by `seed`:
    in eager Paddle, or through `inference` (a decoders.InferenceVAE of the same model: the same
    noise, the same figures to float rounding, about 4x faster on a CPU)."""
    if split is None or len(split) == 0:
        return {}

    cfg = model.cfg
    rng = np.random.default_rng([seed, STREAM_EVAL])
    totals = np.zeros(3)
    if inference is not None:
        for start in range(0, len(split), EVAL_BATCH):
            part = split.subset(slice(start, start + EVAL_BATCH))
            noise = rng.standard_normal((len(part), cfg.latent), dtype=np.float32)
            terms = inference.loss_terms(part.images, part.labels if cfg.conditional else None, noise)
            rec, kl = terms.astype(np.float64).sum(axis=0)
            totals += np.array([rec + kl, rec, kl])
        loss, rec, kl = totals / len(split)
        return {"test_loss": loss, "test_rec": rec, "test_kl": kl}
    model.eval()
    with paddle.no_grad():
        for start in range(0, len(split), EVAL_BATCH):
            part = split.subset(slice(start, start + EVAL_BATCH))
            x, y = inputs(part.images, part.labels, cfg)
            noise = paddle.to_tensor(rng.standard_normal((len(part), cfg.latent), dtype=np.float32))
            head, mean, logvar = model(x, y, noise)
            _, rec, kl = vae_loss(x, head, mean, logvar, cfg.likelihood)
            totals += np.array([rec.item() + kl.item(), rec.item(), kl.item()]) * len(part)
    loss, rec, kl = totals / len(split)
    return {"test_loss": loss, "test_rec": rec, "test_kl": kl}


def build(cfg: ModelConfig) -> VAE:
    """A freshly initialised model whose parameter names do not depend on what was built before.

    Paddle names parameters from a process-wide counter (linear_0, linear_1, ...); building
    under a fresh name scope keeps names - and hence optimizer-state keys - stable, so a run
    resumed in a new process finds its Adam moments.
    """
    with paddle.utils.unique_name.guard():
        return VAE(cfg)


def state_arrays(model: VAE) -> dict:
    """Parameter name -> numpy array (a copy on the host)."""
    return {name: p.numpy() for name, p in model.state_dict().items()}


def load_arrays(model: VAE, arrays: dict) -> None:
    state = model.state_dict()
    for name, param in state.items():
        param.set_value(arrays[name])
