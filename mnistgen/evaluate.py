"""Measuring a generator: test-set loss, classifier accuracy and confidence on its samples,
classifier-feature FID, and train-on-synthetic / test-on-real (TSTR). Returns plain dicts.

Samples are graded by the *judge*, a classifier that never verified them (`weights/judge`, another
architecture and training recipe), never by the *verifier* that `--min-confidence` filtered them
with: a filtered sample is on-label for the verifier by construction. The verifier's on-label
accuracy is reported beside the judge's (`grade`), and `check_independent` refuses a judge that is
the verifier's weights.

The FID here is computed on the penultimate (256-d) features of the judge, not on Inception
features: it is comparable between mnistgen models and runs graded by the same judge, not with
FIDs published for natural images (Heusel et al., NeurIPS 2017, for the formula).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional, Union

import numpy as np

from mnistgen import checkpoint, sample
from mnistgen import classifier as clf
from mnistgen.config import ClassifierConfig
from mnistgen.data import Split
from mnistgen.errors import MnistgenError

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


def check_independent(
    judge: checkpoint.Weights, verifier: Union[None, checkpoint.Weights, Sequence[checkpoint.Weights]]
) -> None:
    """Refuse to grade with the verifier: the judge must not be (one of) the classifier(s) that
    verified the samples, compared by the sha256 of their weights."""
    members = [] if verifier is None else [verifier] if isinstance(verifier, checkpoint.Weights) else list(verifier)
    for member in members:
        if member.sha256 == judge.sha256:
            raise MnistgenError(
                f"the judge {judge.name} is the verifier {member.name} (same sha256): its verified samples pass by "
                "construction; grade with an independent classifier, e.g. --judge judge"
            )


def reference_features(judge_net, test: Split) -> np.ndarray:
    """The judge's penultimate features of the real test images: the FID's reference."""
    return clf.predict(judge_net, test.images)[1]


def verifier_accuracy(verify: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray) -> dict:
    """On-label accuracy and in-label confidence by the verifier (a `clf.Judge` or `clf.Ensemble`
    callable: uint8 images -> probabilities). For an ensemble, the per-class minimum over members."""
    probs = verify(images)  # (N, 10)
    return {
        "accuracy": round(float((probs.argmax(1) == labels).mean()), 4) if len(labels) else 0.0,
        "mean_confidence_in_label": round(float(probs[np.arange(len(labels)), labels].mean()), 4)
        if len(labels)
        else 0.0,
    }


def grade(
    judge_net,
    images: np.ndarray,
    labels: Optional[np.ndarray],
    reference: np.ndarray,
    verify: Optional[Callable[[np.ndarray], np.ndarray]] = None,
) -> dict:
    """The judge's scores (`score_images`: on-label accuracy, confidence, histogram, FID in its
    features) and, under "verifier", the verifier's on-label accuracy on the same images."""
    scores = score_images(judge_net, images, labels, reference)
    if verify is not None and labels is not None:
        scores["verifier"] = verifier_accuracy(verify, images, labels)
    return scores


def samples(
    decoder,
    weights,
    count: int,
    seed: int,
    temperature: float = 1.0,
    prior: sample.Prior = sample.Prior(),
    confidence: Optional[sample.ConfidenceFilter] = None,
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """`count` samples per digit (a VAE: 10 * count unlabelled), exactly as generate makes them."""
    from mnistgen.generate import labels_for

    labels = labels_for(weights, None)
    per_label = count if weights.config.conditional else count * UNLABELLED_FACTOR
    images, found, _ = sample.generate_arrays(decoder, labels, per_label, seed, temperature, prior, confidence)
    return images, (found if weights.config.conditional else None)


def tstr(
    images: np.ndarray,
    labels: np.ndarray,
    real: Split,
    test: Split,
    seed: int = 0,
    config: ClassifierConfig = ClassifierConfig(),
    epochs: int = TSTR_EPOCHS,
) -> dict:
    """Train a classifier of `config` (pass the judge's, so TSTR uses its architecture and recipe)
    on synthetic images and, separately, on as many real ones; report both accuracies on the real
    test set (Esteban et al., 2017, "train on synthetic, test on real")."""
    if labels is None:
        raise MnistgenError("--tstr needs labelled samples: use a conditional model")
    options = clf.ClassifierOptions(epochs=epochs, seed=seed)
    synthetic_net, _ = clf.train(Split(images, labels.astype(np.uint8)), None, options, config)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(real))[: len(images)]
    real_net, _ = clf.train(real.subset(pick), None, options, config)
    return {
        "train_images": int(len(images)),
        "arch": config.arch,
        "epochs": epochs,
        "synthetic_accuracy": round(clf.accuracy(synthetic_net, test), 4),
        "real_accuracy": round(clf.accuracy(real_net, test), 4),
    }
