"""Measuring a generator: test-set loss, classifier accuracy and confidence on its samples,
classifier-feature FID, and train-on-synthetic / test-on-real (TSTR). Returns plain dicts.

The FID here is computed on the penultimate (256-d) features of the project's own MNIST
classifier, not on Inception features: it is comparable between mnistgen models and runs,
not with FIDs published for natural images (Heusel et al., NeurIPS 2017, for the formula).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen import classifier as clf
from mnistgen import decoders, sample, sources
from mnistgen.checkpoint import Weights
from mnistgen.data import Dataset, Split
from mnistgen.errors import MnistgenError
from mnistgen.train import test_loss

UNLABELLED_FACTOR = 10  # a VAE has no labels: as many samples as a CVAE's ten digits
TSTR_EPOCHS = 4  # short trainings, the same for synthetic and real, so the comparison is fair


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N, k): |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2).

    The matrix square root is taken through symmetric eigendecompositions (pure numpy):
    Tr((S_a S_b)^1/2) = Tr((A S_b A)^1/2) with A = S_a^1/2, and A S_b A is symmetric PSD.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(
        ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(np.clip(middle, 0, None)).sum()
    )


def score_images(net, images: np.ndarray, labels: Optional[np.ndarray], reference_features: np.ndarray) -> dict:
    """Classifier accuracy (overall and per label), confidence, predicted-class histogram, FID."""
    probs, feats = clf.predict(net, images)
    predicted = probs.argmax(1)
    result = {
        "images": int(len(images)),
        "class_histogram": np.bincount(predicted, minlength=probs.shape[1]).tolist(),
        "mean_confidence": round(float(probs.max(1).mean()), 4),
        "fid": round(frechet_distance(feats, reference_features), 3),
    }
    if labels is not None:
        result["accuracy"] = round(float((predicted == labels).mean()), 4)
        result["accuracy_per_label"] = {
            str(d): round(float((predicted[labels == d] == d).mean()), 4) for d in np.unique(labels)
        }
        result["mean_confidence_in_label"] = round(float(probs[np.arange(len(labels)), labels].mean()), 4)
    return result


def samples(
    sampler: sample.Sampler, weights: Weights, count: int, seed: int
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """`count` samples per digit (a VAE: 10 * count unlabelled), exactly as generate makes them."""
    labels = sample.labels_for(weights, None)
    per_label = count if weights.config.conditional else count * UNLABELLED_FACTOR
    images, found, _ = sampler.arrays(labels, per_label, seed)
    return images, (found if weights.config.conditional else None)


def tstr(images: np.ndarray, labels: np.ndarray, real: Split, test: Split, seed: int = 0) -> dict:
    """Train the classifier architecture on synthetic images and, separately, on as many real
    ones; report both accuracies on the real test set."""
    if labels is None:
        raise MnistgenError("--tstr needs labelled samples: use a conditional model")
    options = clf.ClassifierOptions(epochs=TSTR_EPOCHS, seed=seed)
    synthetic_net, _ = clf.train(Split(images, labels.astype(np.uint8)), None, options)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(real))[: len(images)]
    real_net, _ = clf.train(real.subset(pick), None, options)
    return {
        "train_images": int(len(images)),
        "epochs": TSTR_EPOCHS,
        "synthetic_accuracy": round(clf.accuracy(synthetic_net, test), 4),
        "real_accuracy": round(clf.accuracy(real_net, test), 4),
    }


def evaluate(
    dataset: Dataset,
    classifier: Weights,
    weights: Optional[Weights] = None,
    sampling: Optional[sample.Sampling] = None,
    images: Optional[list[Path]] = None,
    count: int = 1000,
    seed: int = 0,
    with_tstr: bool = False,
    device_name: str = "cpu",
) -> dict:
    """The report `mnistgen evaluate` prints: a generator's test-set loss and its samples (drawn as
    `sampling` says), or the given `images`, scored by `classifier` against `dataset`'s test split."""
    if dataset.test is None:
        raise MnistgenError(
            f"{dataset.source} has no test split: evaluate compares with the MNIST test set; "
            "pass --data DIR with the t10k files"
        )
    net = clf.load(classifier)
    _, reference = clf.predict(net, dataset.test.images)
    report = {"classifier": classifier.name, "classifier_test_accuracy": round(clf.accuracy(net, dataset.test), 4)}
    if weights is not None:
        sampler = decoders.make_sampler(weights, sampling or sample.resolve_sampling(weights), device_name)
        losses = test_loss(decoders.load_model(weights), dataset.test)
        report.update(model=weights.name, model_sha256=weights.sha256, seed=seed, **sampler.sampling.attrs())
        report.update(precision=sampler.decoder.precision, test_set={k: round(float(v), 3) for k, v in losses.items()})
        pictures, labels = samples(sampler, weights, count, seed)
        if sampler.confidence is not None:
            report["acceptance_rate"] = round(sampler.confidence.acceptance, 4)
    else:
        found = sources.read(images, classes=classifier.card.get("classes"))
        pictures, labels = found.images, found.labels
        report["images"] = [str(p) for p in images]
    report["samples"] = score_images(net, pictures, labels, reference)
    if with_tstr:
        report["tstr"] = tstr(pictures, labels, dataset.train, dataset.test, seed)
    return report
