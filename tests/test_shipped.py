"""The weights shipped in weights/: found by name, documented, and not handing back training images."""

from __future__ import annotations

import numpy as np
import pytest

import mnistgen
from mnistgen import checkpoint

SHIPPED_GENERATORS = ["cvae", "cvae-2d", "vae-2d"]


@pytest.mark.parametrize("name", SHIPPED_GENERATORS)
def test_shipped_cards_record_how_they_were_made(name):
    weights = checkpoint.inspect(name)
    card = weights.card
    assert weights.path.parent == checkpoint.shipped_dir()
    held_out = card["training"].get("holdout", {}).get("val_images", 0)  # cards since the held-out split: 10%
    assert card["training"]["command"].startswith("mnistgen train")
    assert card["training"]["train_images"] + held_out == 60000
    assert card["metrics"]["test_loss"] == pytest.approx(
        card["metrics"]["test_rec"] + card["metrics"]["test_kl"], abs=0.01
    )
    assert set(card["latent_stats"]["centroids"]) == {str(d) for d in range(10)}


@pytest.mark.parametrize("name", SHIPPED_GENERATORS)
def test_samples_are_not_near_copies_of_training_images(name, dataset):
    """Every sample's nearest fixture image differs by at least 1.5/255 per pixel on average (a copy
    differs by 0; the closest two distinct training images in the fixture differ by 2.3)."""
    model = mnistgen.load(name, device="cpu")
    images, _, _ = model.generate(count=50 if model.config.conditional else 500, seed=123)
    samples = images.reshape(len(images), -1).astype(np.float32)
    train = dataset.train.images.reshape(len(dataset.train), -1).astype(np.float32)
    nearest = np.array([np.abs(train - s).mean(1).min() for s in samples])
    assert nearest.min() > 1.5
    assert np.median(nearest) > 10


def test_generated_digits_are_not_blank_or_saturated():
    images, _, _ = mnistgen.load("cvae-2d").generate(count=20, seed=5)
    ink = (images > 128).mean(axis=(1, 2))
    assert ((ink > 0.03) & (ink < 0.5)).all()  # a digit's strokes cover a few percent of the image


def test_models_lists_the_shipped_classifier_too():
    rows = {row["name"]: row for row in mnistgen.models()}
    assert {"cvae", "cvae-2d", "vae-2d", "classifier", "classifier-b", "classifier-c", "classifier-d", "judge"} <= set(
        rows
    )
    assert rows["classifier"]["kind"] == "classifier" and rows["classifier"]["latent"] is None


def test_models_table_never_cuts_a_name_short():
    from typer.testing import CliRunner

    from mnistgen.cli import app

    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "60"})  # a narrow terminal
    assert result.exit_code == 0, result.output
    names = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")]
    assert {"classifier", "classifier-b", "classifier-c", "classifier-d", "cvae", "cvae-2d", "judge", "vae-2d"} <= set(
        names
    )


def test_shipped_classifier_is_accurate(dataset):
    from mnistgen import classifier as clf

    weights = checkpoint.inspect("classifier")
    assert weights.card["metrics"]["test_accuracy"] >= 0.993  # on the full MNIST test set, recorded at training
    assert clf.accuracy(clf.load(weights), dataset.test) >= 0.98  # the 200 fixture test images


def test_default_generator_uses_its_recommended_sampling(tmp_path):
    """generate with no --model uses the quality model and the sampling its card recommends."""
    import json

    from typer.testing import CliRunner

    from mnistgen.cli import app

    result = CliRunner().invoke(app, ["generate", "-d", "7", "-n", "3", "-o", str(tmp_path / "o"), "--seed", "1", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    card = checkpoint.inspect("cvae").card
    assert summary["model"] == "cvae" and summary["prior"] == card["sampling"]["prior"] == "mixture"
    assert (
        summary["temperature"] == card["sampling"]["temperature"] and summary["sharpen"] == card["sampling"]["sharpen"]
    )
    assert summary["min_confidence"] == card["sampling"]["min_confidence"] and 0.5 < summary["acceptance_rate"] <= 1
    explicit = CliRunner().invoke(
        app,
        [
            "generate",
            "-d",
            "7",
            "-n",
            "3",
            "-o",
            str(tmp_path / "p"),
            "--seed",
            "1",
            "-q",
            "--prior",
            "standard",
            "-t",
            "1",
            "--sharpen",
            "1",
            "--min-confidence",
            "0",
        ],
    )
    plain = json.loads(explicit.stdout)
    assert (
        plain["prior"] == "standard"
        and plain["temperature"] == 1.0
        and plain["sharpen"] == 1.0
        and "min_confidence" not in plain
    )


def test_a_missing_classifier_for_the_cards_default_check_says_how_to_skip_it(tmp_path):
    from typer.testing import CliRunner

    from mnistgen.cli import app

    missing = tmp_path / "nope.safetensors"
    result = CliRunner().invoke(
        app, ["generate", "-d", "3", "-n", "5", "-o", str(tmp_path / "o"), "--classifier", str(missing)]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"Error: model cvae checks its samples with a classifier by default, but no weights file at {missing}: check "
        "the path "
        "(a .safetensors file, its .json card, or a run directory); pass --classifier NAME|PATH, or "
        "--min-confidence 0 to skip the check"
    )
    assert not (tmp_path / "o").exists()
    skipped = CliRunner().invoke(
        app,
        [
            "generate",
            "-d",
            "3",
            "-n",
            "5",
            "-o",
            str(tmp_path / "o"),
            "--classifier",
            str(missing),
            "--min-confidence",
            "0",
            "-q",
        ],
    )
    assert skipped.exit_code == 0, skipped.output


def test_shipped_judge_is_independent_of_the_verifier_and_accurate(dataset):
    """evaluate's default grader: another architecture and recipe than the verifier, other weights."""
    from mnistgen import classifier as clf
    from mnistgen import sampling, verifiers
    from mnistgen import scoring as ev

    judge, verifier = checkpoint.inspect("judge"), checkpoint.inspect("classifier")
    assert judge.config.arch == "judge" and verifier.config.arch == "lenet"  # an old card without arch: lenet
    cvae_verifier = sampling.resolve_sampling(checkpoint.inspect("cvae")).classifier  # the default's ensemble
    members = verifiers.members(cvae_verifier)
    assert len(members) == 2 and all(m.config.arch == "lenet" for m in members)
    ev.check_independent(judge, cvae_verifier)  # no member has the judge's weights (sha256)
    training = judge.card["training"]  # trained before --augment existed: the arch's own (affine), as "auto" is
    assert training.get("augment", "auto") == "auto" and training["command"].startswith("mnistgen train")
    assert judge.card["metrics"]["test_accuracy"] >= 0.995  # on the full MNIST test set, recorded at training
    ev.check_independent(judge, verifier)
    assert clf.accuracy(clf.load(judge), dataset.test) >= 0.99  # the 200 fixture test images
