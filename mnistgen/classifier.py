"""The project's MNIST classifiers: layers, training loop, predictions and FID features.

Two architectures (`ClassifierConfig.arch`), shipped as two separate weights:

- "lenet", the *verifiers* (`weights/classifier`, `-b`, `-c`, `-d`): a small LeNet-style CNN (5x5
  conv 32 -> pool -> 5x5 conv 64 -> pool -> dense 256 -> 10), about 99.4% on the MNIST test set;
  `classifier` trained with whole-batch shifts (seed 0), `classifier-b` with per-image affine
  distortions (seed 1); `classifier-d` and `classifier-c` are the same two recipes at half the
  width (conv 16 -> 32: a third of the cost; 99.34% and 99.53%). `generate --min-confidence`
  filters samples with one, or with several as an all-must-agree `Ensemble` (`cvae`'s card:
  `classifier-c,classifier-d`).
- "judge", the independent *judge* (`weights/judge`): two 3x3 convs with batch norm per resolution,
  dropout, per-image affine augmentation. `evaluate` grades with it - accuracy and confidence on
  generated digits, the FID (its 256-d penultimate layer), train-on-synthetic / test-on-real -
  so that verified samples are not graded by the classifier that verified them.

Weights are stored like the generators' (safetensors + JSON card, kind "classifier").
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mnistgen import atomic, checkpoint, predictor
from mnistgen.config import CLASSIFIER_KERNEL, JUDGE_KERNEL, ClassifierConfig
from mnistgen.data import Split, background, to_unit_range
from mnistgen.errors import MnistgenError
from mnistgen.runtime import import_paddle, place_of, usable_cpus
from mnistgen.schedule import cosine_lr
from mnistgen.version import __version__

paddle = import_paddle()
nn = paddle.nn
F = paddle.nn.functional

PREDICT_BATCH = 1000
SHIFT = 2  # random translation of up to 2 pixels each way: cheap augmentation, +0.1-0.2% accuracy
DROPOUT = 0.3
STREAM_SHUFFLE, STREAM_SHIFT = 31, 32
BATCH_NORM_NOTE = "When training, we now always track global mean and variance"  # Paddle's, every batch norm step
# The judge's per-image random affine distortions (Simard et al., "Best practices for convolutional
# neural networks applied to visual document analysis", ICDAR 2003): rotation, scale, translation.
ROTATE_DEGREES, SCALE_RANGE, AFFINE_SHIFT = 10.0, 0.1, 2.0
JUDGE_DROPOUT = 0.4


class Classifier(nn.Layer):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg.validate()
        c, k, side = cfg.channels, CLASSIFIER_KERNEL, cfg.image_size // 4
        self.conv1 = nn.Conv2D(1, c, k, padding=k // 2)
        self.conv2 = nn.Conv2D(c, 2 * c, k, padding=k // 2)
        self.fc = nn.Linear(2 * c * side * side, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.num_classes)
        self.dropout = nn.Dropout(DROPOUT)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 64, 7, 7)
        return F.relu(self.fc(h.flatten(1)))  # (B, 256)

    def forward(self, x):
        return self.out(self.dropout(self.features(x)))  # (B, 10) logits


class JudgeNet(nn.Layer):
    """The independent judge: a VGG-style net (Simonyan & Zisserman, ICLR 2015) of two 3x3 convs
    per resolution, each followed by batch norm (Ioffe & Szegedy, ICML 2015), with dropout
    (Srivastava et al., JMLR 2014). Same interface as `Classifier`: `features` -> `out`."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg.validate()
        c, k, side = cfg.channels, JUDGE_KERNEL, cfg.image_size // 4
        self.conv1 = nn.Conv2D(1, c, k, padding=k // 2, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(c)
        self.conv2 = nn.Conv2D(c, c, k, padding=k // 2, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(c)
        self.conv3 = nn.Conv2D(c, 2 * c, k, padding=k // 2, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(2 * c)
        self.conv4 = nn.Conv2D(2 * c, 2 * c, k, padding=k // 2, bias_attr=False)
        self.bn4 = nn.BatchNorm2D(2 * c)
        self.fc = nn.Linear(2 * c * side * side, cfg.hidden, bias_attr=False)
        self.bn5 = nn.BatchNorm1D(cfg.hidden)
        self.dropout = nn.Dropout(JUDGE_DROPOUT)

        self.out = nn.Linear(cfg.hidden, cfg.num_classes)

    def features(self, x):
        h = F.relu(self.bn1(self.conv1(x)))  # (B, 32, 28, 28)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)  # (B, 32, 14, 14)
        h = F.relu(self.bn3(self.conv3(h)))  # (B, 64, 14, 14)
        h = F.max_pool2d(F.relu(self.bn4(self.conv4(h))), 2)  # (B, 64, 7, 7)
        return F.relu(self.bn5(self.fc(self.dropout(h.flatten(1)))))  # (B, 256)

    def forward(self, x):
        return self.out(self.dropout(self.features(x)))  # (B, 10) logits


def build(cfg: ClassifierConfig):
    """The network the config's `arch` names."""
    return JudgeNet(cfg) if cfg.arch == "judge" else Classifier(cfg)


def load(weights: checkpoint.Weights) -> Classifier:
    if not weights.is_classifier:
        raise MnistgenError(
            f"{weights.path} is a {weights.config.kind} generator, not a classifier: pass --classifier classifier"
        )
    with paddle.utils.unique_name.guard():
        net = build(weights.config)
    arrays = weights.arrays()
    for name, param in net.state_dict().items():
        param.set_value(arrays[name])
    net.eval()
    return net


def predict(net: Classifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) -> class probabilities (N, 10) and penultimate features (N, 256)."""
    probs, feats = [], []
    net.eval()
    with paddle.no_grad():
        for start in range(0, len(images), PREDICT_BATCH):
            x = paddle.to_tensor(to_unit_range(images[start : start + PREDICT_BATCH]), place=place_of(net))
            h = net.features(x)
            probs.append(F.softmax(net.out(h), axis=1).numpy())
            feats.append(h.numpy())
    if not probs:
        return np.zeros((0, net.cfg.num_classes), np.float32), np.zeros((0, net.cfg.hidden), np.float32)
    return np.concatenate(probs), np.concatenate(feats)


class Probabilities(nn.Layer):
    """The classifier ending in softmax, behind a plain `forward(self, x)` for `paddle.jit.save`."""

    def __init__(self, net: Classifier):
        super().__init__()
        self.net = net

    def forward(self, x):
        return F.softmax(self.net.out(self.net.features(x)), axis=1)  # (B, 10)


class Judge:
    """uint8 images (N, 28, 28) -> class probabilities (N, 10), as fast as the device allows: on
    the CPU the classifier exported and run as a Paddle Inference predictor (bf16 where the CPU is
    fast at it: about 25x eager), eager elsewhere. The predictor judges in fixed runs, so a verdict
    does not depend on how many images come in one call."""

    def __init__(
        self, weights: checkpoint.Weights, device_name: str, precision: str = "auto", threads: Optional[int] = None
    ):

        self.net = load(weights)
        self.run = None
        if device_name.startswith("cpu"):

            def build():
                return Probabilities(self.net), [
                    paddle.static.InputSpec([None, 1, self.net.cfg.image_size, self.net.cfg.image_size], "float32", "x")
                ]

            try:
                stem = predictor.exported("classifier", weights.sha256, build)
                self.run = predictor.Predictor(stem, threads or usable_cpus(), predictor.resolve_precision(precision))
            except MnistgenError:
                raise
            except Exception:  # an old Paddle without PIR export, a Paddle built without oneDNN: eager
                self.run = None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.run is None:
            return predict(self.net, images)[0]
        if not len(images):
            return np.zeros((0, self.net.cfg.num_classes), np.float32)
        return self.run(x=to_unit_range(images))


class Ensemble:
    """Several verifiers as one judge callable: per image and class, the smallest probability any
    member gives. A sample then passes `ConfidenceFilter` (score >= threshold) only when every
    member assigns it to its label with at least that confidence: the members must all agree."""

    def __init__(self, members: Sequence):
        if not members:
            raise MnistgenError("an ensemble needs at least one classifier: pass --classifier NAME[,NAME...]")
        self.members = list(members)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        probs = self.members[0](images)  # (N, 10)
        for member in self.members[1:]:
            probs = np.minimum(probs, member(images))  # (N, 10)
        return probs


def verifier(
    weights: Union[checkpoint.Weights, Sequence[checkpoint.Weights]],
    device_name: str,
    precision: str = "auto",
):
    """The judge callable of one classifier, or the all-must-agree `Ensemble` of several."""
    if isinstance(weights, checkpoint.Weights):
        return Judge(weights, device_name, precision)
    members = [Judge(w, device_name, precision) for w in weights]
    return members[0] if len(members) == 1 else Ensemble(members)


@dataclass
class ClassifierOptions:
    epochs: int = 8  # enough for ~99.3% with the shift augmentation
    batch_size: int = 64
    lr: float = 1e-3  # Adam, cosine-decayed to 5% of it
    seed: int = 0
    eval_every: int = 1  # score the test set after every N-th epoch (and the last); 0: only after the last
    augment: str = "auto"  # "shift" (whole-batch shift), "affine" (per-image distortions) or "auto": the arch's own
    command: str = ""
    max_steps: Optional[int] = None  # stop after this many optimisation steps (the schedule spans `epochs`)


def _background(x):
    """Each image's background (data.background) as a (B, 1, 1, 1) tensor: what a shift or a
    distortion fills the uncovered pixels with (MNIST's black, -1; a light background's light)."""
    return paddle.to_tensor(background(x.numpy())).reshape([-1, 1, 1, 1])  # (B, 1, 1, 1)


def _shift(x, rng: np.random.Generator):
    """Translate the whole batch by up to SHIFT pixels, filled with each image's background: pad,
    then crop at a random offset."""
    dy, dx = rng.integers(0, 2 * SHIFT + 1, size=2)
    side = x.shape[-1]
    pad = [SHIFT, SHIFT, SHIFT, SHIFT]
    border = F.pad(paddle.zeros_like(x), pad, value=1.0)  # 1 on the uncovered rim: pixels stay exactly as they were
    padded = F.pad(x, pad) + _background(x) * border  # (B, 1, 28 + 2s, 28 + 2s)
    return padded[:, :, dy : dy + side, dx : dx + side]


def _affine(x, rng: np.random.Generator):
    """Per-image random rotation, scale and translation (Simard et al. 2003), resampled through an
    affine grid (the spatial transformer's sampler: Jaderberg et al., NeurIPS 2015)."""
    b, side = x.shape[0], x.shape[-1]
    angle = np.deg2rad(rng.uniform(-ROTATE_DEGREES, ROTATE_DEGREES, b))
    scale = 1 + rng.uniform(-SCALE_RANGE, SCALE_RANGE, b)
    shift = rng.uniform(-AFFINE_SHIFT, AFFINE_SHIFT, (b, 2)) * 2 / side  # pixels -> [-1, 1] grid units
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = np.stack([np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(paddle.to_tensor(theta.astype(np.float32)), [b, 1, side, side], align_corners=False)
    fill = _background(x)
    return F.grid_sample(x - fill, grid, align_corners=False) + fill  # (B, 1, 28, 28); zero fill is the background


AUGMENTATIONS = ("auto", "shift", "affine")


def augmentation(cfg: ClassifierConfig, augment: str = "auto"):
    """What a training recipe distorts its batches with: by default ("auto") the verifier (lenet) a
    whole-batch shift, the judge per-image affine distortions."""
    if augment not in AUGMENTATIONS:
        raise MnistgenError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENTATIONS)}")
    if augment == "auto":
        augment = "affine" if cfg.arch == "judge" else "shift"
    return _affine if augment == "affine" else _shift


def evaluated(epoch: int, epochs: int, eval_every: int) -> bool:
    """Whether the test set is scored after `epoch` (0-based): every `eval_every`-th epoch and the last."""
    return epoch + 1 == epochs or (eval_every > 0 and (epoch + 1) % eval_every == 0)


def accuracy(net: Classifier, split: Split) -> float:
    probs, _ = predict(net, split.images)
    return float((probs.argmax(1) == split.labels).mean())


def train(
    train_split: Split,
    test_split: Optional[Split],
    options: ClassifierOptions,
    cfg: ClassifierConfig = ClassifierConfig(),
    on_epoch=lambda metrics: None,
    on_step=lambda done, total: None,
) -> tuple[Classifier, list[dict]]:
    """Train a classifier from scratch; returns it and one metrics dict per epoch. `on_epoch(metrics)`
    hears of each epoch, `on_step(done, total)` of each optimisation step (and once with 0 before
    the first): a training of one long epoch, as evaluate --augment's, still shows progress."""

    paddle.seed(options.seed)
    with paddle.utils.unique_name.guard():
        net = build(cfg)
        opt = paddle.optimizer.Adam(learning_rate=options.lr, parameters=net.parameters())
    images = paddle.to_tensor(to_unit_range(train_split.images))  # (N, 1, 28, 28)
    labels = paddle.to_tensor(train_split.labels.astype(np.int64))  # (N,)
    n = len(train_split)
    batch = min(options.batch_size, n)
    steps = max(1, n // batch)
    planned = options.epochs * steps if options.max_steps is None else min(options.epochs * steps, options.max_steps)
    augment = augmentation(net.cfg, options.augment)
    on_step(0, planned)
    history, done = [], 0
    with warnings.catch_warnings():  # Paddle says so on every training-mode batch norm (the judge's), to stderr
        warnings.filterwarnings("ignore", BATCH_NORM_NOTE)
        for epoch in range(options.epochs):
            if options.max_steps is not None and done >= options.max_steps:
                break
            opt.set_lr(cosine_lr(options.lr, epoch, options.epochs))
            rng = np.random.default_rng([options.seed, STREAM_SHUFFLE, epoch])
            perm = paddle.to_tensor(rng.permutation(n))
            net.train()
            started, total = time.perf_counter(), 0.0
            for step in range(steps if options.max_steps is None else min(steps, options.max_steps - done)):
                done += 1
                index = perm[step * batch : (step + 1) * batch]
                x = augment(paddle.gather(images, index), rng)  # (B, 1, 28, 28)
                loss = F.cross_entropy(net(x), paddle.gather(labels, index))
                loss.backward()
                opt.step()
                opt.clear_grad()
                total += loss.item()
                on_step(done, planned)
            metrics = {
                "epoch": epoch + 1,
                "train_loss": round(total / max(1, step + 1), 5),
                "seconds": round(time.perf_counter() - started, 1),
            }
            if test_split is not None and evaluated(epoch, options.epochs, options.eval_every):
                metrics["test_accuracy"] = round(accuracy(net, test_split), 5)
            history.append(metrics)
            on_epoch(metrics)
    net.eval()
    return net, history


def save(
    net: Classifier,
    history: list[dict],
    options: ClassifierOptions,
    run_dir: Path,
    source: str,
    train_images: int,
    classes: Optional[list[str]] = None,
    stem: str = checkpoint.RUN_MODEL_STEM,
    holdout: Optional[dict] = None,
) -> checkpoint.Weights:
    """Write `run_dir`/`stem`.safetensors + .json (and the epochs' metrics); `classes` names the labels."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_name = checkpoint.RUN_METRICS_FILE if stem == checkpoint.RUN_MODEL_STEM else f"{stem}-metrics.jsonl"
    atomic.write_text(run_dir / metrics_name, "".join(json.dumps(h) + "\n" for h in history))
    card = {
        "name": run_dir.name if stem == checkpoint.RUN_MODEL_STEM else f"{run_dir.name}/{stem}",
        "config": net.cfg.to_dict(),
        "classes": list(classes) if classes else [str(c) for c in range(net.cfg.num_classes)],
        "training": {
            **asdict(options),
            "epochs_done": len(history),
            "train_images": train_images,
            "data": source,
            "seconds_total": round(sum(h["seconds"] for h in history), 1),
            **({"holdout": holdout} if holdout else {}),
        },
        "metrics": {k: v for k, v in history[-1].items() if k != "epoch"},
        "mnistgen_version": __version__,
        "paddle_version": paddle.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    arrays = {name: p.numpy() for name, p in net.state_dict().items()}
    return checkpoint.save(run_dir / stem, arrays, card)


def fit(
    dataset,
    run_dir: Path,
    options: ClassifierOptions,
    cfg: ClassifierConfig = ClassifierConfig(),
    on_epoch=None,
    classes: Optional[list[str]] = None,
    holdout: Optional[dict] = None,
) -> dict:
    """Train a classifier of `cfg` on `dataset`'s training split (scored on its test split), save it
    as a weights file and card in `run_dir` (`classes` names the labels; `holdout` records how the
    test split was held out); returns the last epoch's metrics."""
    net, history = train(dataset.train, dataset.test, options, cfg, on_epoch=on_epoch or (lambda metrics: None))
    save(net, history, options, run_dir, dataset.source, len(dataset.train), classes, holdout=holdout)
    return history[-1]
