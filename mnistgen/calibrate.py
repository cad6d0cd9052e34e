"""The end of a training run: a companion classifier trained on the model's own images, and the
sampling settings (prior, temperature, sharpening) chosen for the model on held-out images.

What is maximised: the companion's on-label rate on the samples minus a diversity penalty,
    score = on_label - DIVERSITY_WEIGHT * max(0, 1 - spread(samples) / spread(held-out real)),
where spread is the mean distance between two images of the same label in the companion's
penultimate features. Why not a classifier-feature FID on the held-out images: a small data
set holds out a few dozen images per label, far too few to estimate a 256-d covariance, so
such an FID is dominated by its estimation bias; the on-label rate is what verification
enforces and what augmentation needs, and the spread term keeps a low temperature from buying
it with near-identical prototypes. The companion then verifies the samples at the strictest of
THRESHOLDS that keeps MIN_ACCEPTANCE of every label's samples (none: no verification).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mnistgen import checkpoint, decoders, sample
from mnistgen import classifier as clf
from mnistgen.config import ClassifierConfig, PriorKind, SamplingRequest
from mnistgen.data import Split
from mnistgen.labels import labels_for
from mnistgen.sampling import Sampling, resolve_sampling

CALIBRATED = ("prior", "temperature", "sharpen")  # the SamplingRequest fields chosen here: the card's keys, in order
PRIORS = (PriorKind.mixture.value, PriorKind.fitted.value, PriorKind.standard.value)
TEMPERATURES = (0.8, 1.0, 1.2)
SHARPENS = (1.0, 3.0)
PER_LABEL = 50  # samples per label and candidate
DIVERSITY_WEIGHT = 1.0
THRESHOLDS = (0.9, 0.7, 0.5, 0.3)  # verification thresholds tried, strictest first
MIN_ACCEPTANCE = 0.2  # a threshold must keep at least this share of every label's samples
COMPANION_STEPS = (400, 2000)  # the companion's optimisation steps: 8 epochs, but at least 400 and at most 2,000
MAX_PAIRS = 2000  # feature pairs per label for the spread
MIN_SPREAD_IMAGES = 2  # images of a label a spread needs (fewer held out: that label has no diversity penalty)


def companion(train: Split, val: Split, classes: list[str], stem: Path, seed: int, source: str) -> checkpoint.Weights:
    """Train the project's classifier on `train` (scored on `val`), save it as `stem`.safetensors."""
    steps_per_epoch = max(1, len(train) // min(clf.ClassifierOptions.batch_size, len(train)))
    low, high = COMPANION_STEPS
    steps = min(max(clf.ClassifierOptions.epochs * steps_per_epoch, low), high)
    options = clf.ClassifierOptions(
        epochs=math.ceil(steps / steps_per_epoch),
        seed=seed,
        command="mnistgen train (companion classifier)",
        max_steps=steps,
    )
    net, history = clf.train(train, val if len(val) else None, options, ClassifierConfig(num_classes=len(classes)))
    stem = Path(stem)
    return clf.save(net, history, options, stem.parent, source, len(train), classes, stem.name)


def _spread(features: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> dict:
    found = {}
    for label in np.unique(labels):
        f = features[labels == label]
        if len(f) < MIN_SPREAD_IMAGES:
            continue
        a, b = rng.integers(0, len(f), size=(2, MAX_PAIRS))
        keep = a != b
        found[int(label)] = float(np.linalg.norm(f[a[keep]] - f[b[keep]], axis=1).mean())
    return found


def calibrate(
    weights: checkpoint.Weights, classifier: checkpoint.Weights, val: Split, device_name: str, seed: int = 0
) -> dict:
    """Try every (prior, temperature, sharpen) candidate on PER_LABEL samples per label; return the
    card's "sampling" section: the best candidate, the verification threshold and the figures."""
    net = clf.load(classifier)
    rng = np.random.default_rng([seed, 41])
    _, real_features = clf.predict(net, val.images)
    real = _spread(real_features, val.labels, rng)
    labels = labels_for(weights, None)
    tried = []
    for sharpen in SHARPENS:
        base = Sampling(sharpen=sharpen)
        decoder = decoders.make_decoder(weights, device_name, base, backend="eager")
        for prior in PRIORS:
            for temperature in TEMPERATURES:  # each candidate alone: no truncation, no verifier
                asked = SamplingRequest(
                    prior=prior, temperature=temperature, sharpen=sharpen, truncation=0, min_confidence=0
                )
                spec = resolve_sampling(weights, asked)
                images, found, _ = sample.Sampler(decoder, spec).arrays(labels, PER_LABEL, seed)
                probs, features = clf.predict(net, images)
                on_label = float((probs.argmax(1) == found).mean())
                spread = _spread(features, found, rng)
                ratios = [spread[k] / real[k] for k in spread if real.get(k)]
                ratio = float(np.mean(ratios)) if ratios else None  # None: no label has 2 held-out images
                score = on_label - (DIVERSITY_WEIGHT * max(0.0, 1.0 - ratio) if ratios else 0.0)
                in_label = probs[np.arange(len(found)), found]
                kept = {t: min(float((in_label[found == k] >= t).mean()) for k in np.unique(found)) for t in THRESHOLDS}
                tried.append(
                    {
                        **{key: getattr(asked, key) for key in CALIBRATED},
                        "on_label": round(on_label, 4),
                        "spread_ratio": None if ratio is None else round(ratio, 4),
                        "score": round(score, 4),
                        "worst_label_acceptance": {str(t): round(v, 3) for t, v in kept.items()},
                    }
                )
    best = max(tried, key=lambda t: t["score"])
    acceptance = best["worst_label_acceptance"]
    threshold = next((t for t in THRESHOLDS if acceptance[str(t)] >= MIN_ACCEPTANCE), 0.0)
    return {
        **{key: best[key] for key in CALIBRATED},
        "min_confidence": threshold,
        "chosen_by": (
            f"mnistgen train: the companion classifier's on-label rate minus a diversity penalty on {PER_LABEL} "
            f"samples per label, against {len(val)} held-out images (calibrate.py)"
            + ("" if real else f"; no penalty: no label has {MIN_SPREAD_IMAGES} held-out images to measure spread on")
        ),
        "candidates": tried,
    }
