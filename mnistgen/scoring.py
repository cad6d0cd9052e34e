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

It knows nothing of the terminal: the slow stages (sampling, grading, each classifier training,
the near-copy search) report to an `on_progress(stage, done, total)` callable, which the CLI turns
into a rich progress bar.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from mnistgen import checkpoint, data, decoders, records, sample, sources, verifiers
from mnistgen import classifier as clf
from mnistgen.checkpoint import Weights
from mnistgen.config import (
    DEFAULT_CLASSIFIER,
    DEFAULT_JUDGE,
    MNIST_CLASSES,
    VERDICT_HELPS,
    VERDICT_HURTS,
    VERDICT_UNCLEAR,
    ClassifierConfig,
)
from mnistgen.data import Dataset, Split
from mnistgen.errors import MnistgenError
from mnistgen.labels import labels_for
from mnistgen.model import test_loss
from mnistgen.sampling import Sampling, resolve_sampling

UNLABELLED_FACTOR = 10  # a VAE has no labels: as many samples as a CVAE's ten digits
TSTR_EPOCHS = 4  # short trainings, the same for synthetic and real, so the comparison is fair
AUGMENT_STEPS = 500  # optimisation steps of each `augment` training (batch 64), real alone and real + generated
AUGMENT_SEEDS = (0, 1)
MAX_AUGMENT_IMAGES = 200_000  # generated images `augment` holds and trains on (uint8: 157 MB at most)
MIN_FID_IMAGES = 2  # a covariance needs two images on each side: with fewer, the FID is null
JUDGE_FIX = "pass --judge, a classifier trained on them (mnistgen train --model classifier --data DIR)"

# on_progress(stage, done, total): a stage named in words ("augment seed 0: real alone"), `done` of
# its `total` images or optimisation steps; every stage is heard first with 0 and last with total.
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default `on_progress`: hears nothing."""


@contextlib.contextmanager
def stage(on_progress: Progress, text: str, total: int):
    """A stage done in one piece, with no count within: heard at its start (0) and at its end (total)."""
    on_progress(text, 0, total)
    yield
    on_progress(text, total, total)


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


def check_labels(labels: np.ndarray, classes: int, what: str) -> None:
    """The judge grades only labels it knows: a label past its classes has no score to give."""
    if len(labels) and int(labels.max()) >= classes:
        raise MnistgenError(
            f"{what} have label {int(labels.max())}, but the judge knows classes 0-{classes - 1}: "
            "grade images of the judge's classes (pass --judge trained on them)"
        )


def score_images(net, images: np.ndarray, labels: Optional[np.ndarray], reference_features: np.ndarray) -> dict:
    """Classifier accuracy (overall and per label), confidence, predicted-class histogram, FID (None
    below MIN_FID_IMAGES on either side: one image, `evaluate --images one.png`, has no covariance)."""
    probs, feats = clf.predict(net, images)
    if labels is not None:
        check_labels(labels, probs.shape[1], "the images")
    predicted = probs.argmax(1)
    result = {
        "images": int(len(images)),
        "class_histogram": np.bincount(predicted, minlength=probs.shape[1]).tolist(),
        "mean_confidence": round(float(probs.max(1).mean()), 4),
        "fid": round(frechet_distance(feats, reference_features), 3)
        if min(len(feats), len(reference_features)) >= MIN_FID_IMAGES
        else None,
    }
    if labels is not None:
        result["accuracy"] = round(float((predicted == labels).mean()), 4)
        result["accuracy_per_label"] = {
            str(d): round(float((predicted[labels == d] == d).mean()), 4) for d in np.unique(labels)
        }
        result["mean_confidence_in_label"] = round(float(probs[np.arange(len(labels)), labels].mean()), 4)
    return result


def check_independent(judge: checkpoint.Weights, verifier: Optional[verifiers.Verifier]) -> None:
    """Refuse to grade with the verifier: the judge must not be (one of) the classifier(s) that
    verified the samples, compared by the sha256 of their weights."""
    digits = data.label_names([], MNIST_CLASSES)
    for member in verifiers.members(verifier):
        if member.sha256 == judge.sha256:
            own = (judge.card.get("classes") or digits) != digits  # classes the shipped judge does not know
            fix = (
                ": train another on these classes (mnistgen train --model classifier --data DIR --seed 1) and pass it "
                "as --judge"
                if own
                else f", e.g. --judge {DEFAULT_JUDGE}"
            )
            raise MnistgenError(
                f"the judge {judge.name} is the verifier {member.name} (same sha256): its verified samples pass by "
                f"construction; grade with an independent classifier{fix}"
            )


def images_verifier(
    judge: Weights, named: Optional[str], images: Sequence[Path] = ()
) -> tuple[Optional[verifiers.Verifier], Optional[str]]:
    """The classifier reported beside the judge on `--images` (read with the judge's classes):
    `named` (--classifier), else the companion of the model generate recorded for the images, with
    a note saying so (`recorded_companion`), else the shipped verifier when it knows the judge's
    classes, else none and the reason (`verifiers.usable_verifier`: one of other classes is refused
    when named)."""
    own = None if named else recorded_companion(judge, images)
    if own is not None:
        return own
    fix = "pass a classifier trained on the judge's classes, or leave --classifier out"
    verifier = verifiers.inspect_verifier(named or DEFAULT_CLASSIFIER)
    return verifiers.usable_verifier(verifier, judge.class_names, f"the judge {judge.name}", named is not None, fix)


def recorded_companion(judge: Weights, images: Sequence[Path]) -> Optional[tuple[verifiers.Verifier, str]]:
    """The companion classifier of the model that generated `images` and a note naming it: the model
    is the one generate recorded for all of them (records.recorded_model), still at its recorded path
    with its recorded sha256, its card names a companion that loads, knows the judge's classes and is
    not the judge. None otherwise: the images are verified as any tool's are."""
    recorded = records.recorded_model(list(images))
    if recorded is None:
        return None
    path, sha256 = recorded
    try:
        model = checkpoint.inspect_role(path, "--model")
        same = model.sha256 == sha256
        companion = verifiers.named_verifier(model) if same and verifiers.companion_paths(model) else None
    except MnistgenError:  # moved, changed or damaged since: as if nothing were recorded
        return None
    if companion is None or judge.sha256 in {member.sha256 for member in verifiers.members(companion)}:
        return None
    usable, _ = verifiers.usable_verifier(companion, judge.class_names, f"the judge {judge.name}", False, "")
    if usable is None:
        return None
    return companion, (
        f"verifier: {verifiers.verifier_name(companion)}, the companion classifier of model {model.name} "
        f"({model.path}), which generated these images; pass --classifier to choose another"
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
    sampler: sample.Sampler, weights: Weights, count: int, seed: int, on_progress: Progress = no_progress
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """`count` samples per digit (a VAE: 10 * count unlabelled), exactly as generate makes them."""
    labels = labels_for(weights, None)
    per_label = count if weights.config.conditional else count * UNLABELLED_FACTOR
    total = len(labels) * per_label
    text = f"sampling {total:,} images"
    on_progress(text, 0, total)
    images, found, _ = sampler.arrays(labels, per_label, seed, lambda drawn: on_progress(text, drawn, total))
    return images, (found if weights.config.conditional else None)


def tstr(
    images: np.ndarray,
    labels: np.ndarray,
    real: Split,
    test: Split,
    seed: int = 0,
    config: ClassifierConfig = ClassifierConfig(),
    epochs: int = TSTR_EPOCHS,
    on_progress: Progress = no_progress,
) -> dict:
    """Train a classifier of `config` (pass the judge's, so TSTR uses its architecture and recipe)
    on synthetic images and, separately, on as many real ones; report both accuracies on the real
    test set (Esteban et al., 2017, "train on synthetic, test on real"). Each training is a stage
    of `on_progress`, counted in optimisation steps."""
    if labels is None:
        raise MnistgenError("--tstr needs labelled samples: use a conditional model")
    options = clf.ClassifierOptions(epochs=epochs, seed=seed)
    heard = functools.partial(on_progress, "TSTR: training on generated images")
    synthetic_net, _ = clf.train(Split(images, labels.astype(np.uint8)), None, options, config, on_step=heard)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(real))[: len(images)]
    heard = functools.partial(on_progress, "TSTR: training on real images")
    real_net, _ = clf.train(real.subset(pick), None, options, config, on_step=heard)
    return {
        "train_images": int(len(images)),
        "arch": config.arch,
        "epochs": epochs,
        "synthetic_accuracy": round(clf.accuracy(synthetic_net, test), 4),
        "real_accuracy": round(clf.accuracy(real_net, test), 4),
    }


def near_copies(
    images: np.ndarray, real: Split, test: Split, chunk: int = 2000, on_progress: Progress = no_progress
) -> dict:
    """How close generated images come to the training images: the distance (pixels in [0, 1],
    L2) from each to its nearest real training image; a near-copy is closer than the closest 1%
    of real test images come to the training set. One stage of `on_progress`, counted in images
    searched for (the generated ones, then the test images)."""
    held = test.images[: 10 * chunk]
    text = f"near-copy search: {len(images):,} images"
    total = len(images) + len(held)
    on_progress(text, 0, total)

    def nearest(x: np.ndarray, before: int) -> np.ndarray:
        base = real.images.reshape(len(real), -1).astype(np.float32) / 255.0
        norms = (base**2).sum(1)
        found = []
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].reshape(-1, base.shape[1]).astype(np.float32) / 255.0
            d2 = (part**2).sum(1)[:, None] + norms[None, :] - 2 * part @ base.T
            found.append(np.sqrt(np.clip(d2.min(1), 0, None)))
            on_progress(text, before + start + len(part), total)
        return np.concatenate(found) if found else np.zeros(0, np.float32)

    generated, reference = nearest(images, 0), nearest(held, len(images))
    threshold = float(np.percentile(reference, 1))
    return {
        "generated_median_distance": round(float(np.median(generated)), 3),
        "test_median_distance": round(float(np.median(reference)), 3),
        "threshold": round(threshold, 3),
        "near_copies": int((generated < threshold).sum()),
        "near_copy_rate": round(float((generated < threshold).mean()), 4),
    }


def augment(
    real: Split,
    images: np.ndarray,
    labels: np.ndarray,
    test: Split,
    seeds=AUGMENT_SEEDS,
    steps: int = AUGMENT_STEPS,
    num_classes: Optional[int] = None,
    on_progress: Progress = no_progress,
) -> dict:
    """Does a generated set help a classifier trained on `real`? For each seed, train the
    classifier architecture from scratch on `real` alone and on `real` + the generated images, the
    same number of optimisation steps (`steps`, batches of 64), and score both on `test`; report
    both accuracies, the gain and its spread across seeds. Each training is a stage of
    `on_progress` ("augment seed 0: real alone"), counted in steps; the near-copy search follows."""
    if labels is None:
        raise MnistgenError("--augment needs labelled generated images: use a conditional model, or labelled --images")
    if len(images) > MAX_AUGMENT_IMAGES:
        raise MnistgenError(
            f"--augment trains on at most {MAX_AUGMENT_IMAGES:,} generated images, got {len(images):,}: "
            "lower --count, or pass fewer --images"
        )
    if not len(seeds):
        raise MnistgenError("--augment needs at least one seed: pass --seeds 0,1")
    classes = num_classes or int(max(real.labels.max(), labels.max(), test.labels.max())) + 1
    check_labels(real.labels, classes, "the --augment images")
    mixed = Split(
        np.concatenate([real.images, np.asarray(images, np.uint8)]),
        np.concatenate([real.labels.astype(np.int64), np.asarray(labels, np.int64)]),
    )
    batch = clf.ClassifierOptions.batch_size
    runs = []
    for seed in seeds:
        scores = {}
        for name, split, words in (("real", real, "real alone"), ("augmented", mixed, "real + generated")):
            per_epoch = max(1, len(split) // min(batch, len(split)))
            options = clf.ClassifierOptions(epochs=-(-steps // per_epoch), seed=int(seed), max_steps=steps)
            heard = functools.partial(on_progress, f"augment seed {int(seed)}: {words}")
            net, _ = clf.train(split, None, options, ClassifierConfig(num_classes=classes), on_step=heard)
            scores[name] = clf.accuracy(net, test)
        runs.append(
            {
                "seed": int(seed),
                "real_accuracy": round(scores["real"], 4),
                "augmented_accuracy": round(scores["augmented"], 4),
                "gain": round(scores["augmented"] - scores["real"], 4),
            }
        )
    gains = np.array([r["gain"] for r in runs])
    return {
        "nearest_training_image": near_copies(np.asarray(images, np.uint8), real, test, on_progress=on_progress),
        "real_images": int(len(real)),
        "generated_images": int(len(images)),
        "test_images": int(len(test)),
        "steps": steps,
        "batch_size": batch,
        "seeds": [int(s) for s in seeds],
        "real_accuracy": round(float(np.mean([r["real_accuracy"] for r in runs])), 4),
        "augmented_accuracy": round(float(np.mean([r["augmented_accuracy"] for r in runs])), 4),
        "gain": round(float(gains.mean()), 4),
        "gain_min": round(float(gains.min()), 4),
        "gain_max": round(float(gains.max()), 4),
        "gain_std": round(float(gains.std(ddof=1)) if len(gains) > 1 else 0.0, 4),
        "verdict": augment_verdict(gains),
        "runs": runs,
    }


def augment_verdict(gains) -> str:
    """ "helps" when the generated set raised the test accuracy on every seed, "hurts" when it lowered
    it on every seed, else "unclear" (the seeds disagree, or a seed's gain is 0)."""
    gains = np.asarray(gains, dtype=float)
    if (gains > 0).all():
        return VERDICT_HELPS
    if (gains < 0).all():
        return VERDICT_HURTS
    return VERDICT_UNCLEAR


def evaluate(
    dataset: Dataset,
    judge: Weights,
    weights: Optional[Weights] = None,
    sampling: Optional[Sampling] = None,
    images: Optional[list[Path]] = None,
    count: int = 1000,
    seed: int = 0,
    with_tstr: bool = False,
    device_name: str = "cpu",
    augment_real: Optional[Dataset] = None,
    seeds=AUGMENT_SEEDS,
    steps: int = AUGMENT_STEPS,
    verifier: Optional[verifiers.Verifier] = None,
    on_progress: Optional[Progress] = None,
    verifier_note: Optional[str] = None,
) -> dict:
    """The report `mnistgen evaluate` prints: a generator's test-set loss and its samples (drawn as
    `sampling` says), or the given `images`, graded by the independent `judge` against `dataset`'s
    test split; "classes" names the judge's labels (the histogram's and per-label accuracy's). The
    verifier (the sampling's classifier, else `verifier`) is reported beside the judge and never
    grades: a judge with the verifier's weights is refused; `verifier_note` says why there is none
    (`verifiers.usable_verifier`), or where an --images verifier came from (`recorded_companion`).
    `augment_real` (its training split) is the labelled set of `augment`. Sets whose classes disagree
    are refused, and the `images` are read and checked (by the judge's class names) before any slow
    work. `on_progress(stage, done, total)` hears of each slow stage, in order (`Progress`)."""
    on_progress = on_progress or no_progress
    if dataset.test is None:
        raise MnistgenError(
            f"{dataset.source} has no test split: evaluate compares with the MNIST test set; "
            "pass --data DIR with the t10k files"
        )
    if weights is not None:
        sampling = sampling or resolve_sampling(weights)
        verifier = sampling.classifier if sampling.verified else verifier  # the verifier that filtered wins
    check_independent(judge, verifier)
    check_classes_agree(dataset, judge, weights, augment_real)
    if with_tstr and not len(dataset.train):
        raise MnistgenError("--tstr trains a classifier on real training images: pass --data with them")
    found = None
    if weights is None:  # read by the judge's class names; refused here, before the judge has run
        limit = MAX_AUGMENT_IMAGES + 1 if augment_real is not None else None
        found = sources.read(images, limit, judge.class_names, sources.Owner(f"the judge {judge.name!r}", JUDGE_FIX))
        if found.labels is not None:
            check_labels(found.labels, judge.config.num_classes, "the images")
    net = clf.load(judge)
    tested = len(dataset.test)
    with stage(on_progress, f"judge on {tested:,} test images", tested):
        probs, reference = clf.predict(net, dataset.test.images)  # one pass: the judge's accuracy and the FID reference
    check_labels(dataset.test.labels, probs.shape[1], "the test images")
    accuracy = float((probs.argmax(1) == dataset.test.labels).mean())
    report = {"judge": judge.name, "judge_test_accuracy": round(accuracy, 4), "classes": judge.class_names}
    if verifier is not None:
        report["verifier"] = verifiers.verifier_name(verifier)
    if verifier_note:
        report["verifier_note"] = verifier_note
    verify = None
    if weights is not None:
        sampler = decoders.make_sampler(weights, sampling, device_name)
        with stage(on_progress, f"test-set loss on {tested:,} images", tested):
            losses = test_loss(decoders.load_model(weights), dataset.test)
        report.update(model=weights.name, model_sha256=weights.sha256, seed=seed, **sampler.sampling.attrs())
        report.update(precision=sampler.decoder.precision, test_set={k: round(float(v), 3) for k, v in losses.items()})
        pictures, labels = samples(sampler, weights, count, seed, on_progress)
        if sampler.confidence is not None:
            report["acceptance_rate"] = round(sampler.confidence.acceptance, 4)
            verify = sampler.confidence.judge
    else:
        pictures, labels = found.images, found.labels
        report.update(images=[str(p) for p in images], notes=found.notes)
    if verify is None and verifier is not None:
        verify = clf.verifier(verifier, device_name)
    with stage(on_progress, f"grading {len(pictures):,} images", len(pictures)):
        report["samples"] = grade(net, pictures, labels, reference, verify)
    if with_tstr:
        report["tstr"] = tstr(
            pictures, labels, dataset.train, dataset.test, seed, judge.config, on_progress=on_progress
        )
    if augment_real is not None:
        classes = len(judge.card.get("classes") or []) or None
        real = augment_real.train
        report["augment"] = augment(real, pictures, labels, dataset.test, seeds, steps, classes, on_progress)
    return report


def check_classes_agree(dataset: Dataset, judge: Weights, weights: Optional[Weights], real: Optional[Dataset]) -> None:
    """Before any work: the test images, the judge, the model and the --augment set must name their
    labels alike (class folders, model cards); compared by index, unrelated classes would be paired."""
    test, judge_classes, by_judge = dataset.test, judge.card.get("classes"), f"--judge {judge.name}"
    data.check_same_classes(test.labels, dataset.classes, "the test images", judge_classes, by_judge, JUDGE_FIX)
    if weights is not None:
        model_classes, model = weights.card.get("classes"), f"model {weights.name}"
        data.check_same_classes(test.labels, dataset.classes, "the test images", model_classes, model)
        if weights.config.conditional:
            labels = np.arange(weights.config.num_classes)
            data.check_same_classes(labels, model_classes, model, judge_classes, by_judge, JUDGE_FIX)
    if real is not None:
        augment_set = "the --augment images"
        data.check_same_classes(real.train.labels, real.classes, augment_set, dataset.classes, "the test images")
