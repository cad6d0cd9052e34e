"""Issue #12: held-out split, early stopping, recipes, the companion classifier, calibrated
sampling and `evaluate --augment`, on tiny real models trained on the fixture."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen import calibrate, checkpoint, data, sampling, scoring, train
from mnistgen.cli import app
from mnistgen.config import RECIPES, ModelConfig, SamplingRequest, named_recipe, recipe_for, run_name, train_kind
from mnistgen.data import Dataset
from mnistgen.errors import MnistgenError

runner = CliRunner()


def _folder_dataset(dataset, n=300):
    """The fixture as a source without a test split (as an ImageFolder would be)."""
    return Dataset(dataset.train.subset(slice(0, n)), None, "fixture")


def test_held_out_split_is_recorded_and_never_trained_on(tmp_path, dataset):
    run = tmp_path / "run"
    options = train.TrainOptions(epochs=1, seed=3, companion=False)
    train.train(ModelConfig(kind="cvae", channels=8), _folder_dataset(dataset), options, run)
    card = checkpoint.inspect(str(run)).card
    held = card["training"]["holdout"]
    assert held["test"] == "held out" and held["seed"] == 3 and held["stratified_by"] == "label"
    assert held["train_images"] + held["val_images"] + held["test_images"] == 300
    assert card["training"]["train_images"] == held["train_images"] < 300
    parts = data.holdout(dataset.train.subset(slice(0, 300)), test=data.TEST_FRACTION, seed=3)
    assert len(np.intersect1d(parts.val_index, parts.test_index)) == 0
    assert len(parts.train) == held["train_images"]
    assert "val_loss" in json.loads((run / train.METRICS_FILE).read_text().splitlines()[0])


def test_a_source_test_split_is_kept_and_only_validation_is_held_out(tmp_path, dataset):
    small = Dataset(dataset.train.subset(slice(0, 300)), dataset.test, "fixture")
    train.train(ModelConfig(kind="vae", channels=8), small, train.TrainOptions(epochs=1, companion=False), tmp_path)
    held = checkpoint.inspect(str(tmp_path)).card["training"]["holdout"]
    assert held["test"] == "the source's test split" and held["test_images"] == len(dataset.test)
    assert held["val_images"] > 0 and held["train_images"] + held["val_images"] == 300


def test_early_stopping_stops_and_keeps_the_best_epoch(tmp_path, dataset):
    run = tmp_path / "run"
    # A learning rate far too high without decay: the held-out loss soon stops improving.
    options = train.TrainOptions(epochs=None, max_epochs=12, patience=2, lr=0.03, lr_decay=False, companion=False)
    metrics = train.train(ModelConfig(kind="cvae", channels=8), _folder_dataset(dataset), options, run)
    history = [json.loads(line) for line in (run / train.METRICS_FILE).read_text().splitlines()]
    losses = [h["val_loss"] for h in history]
    best = int(np.argmin(losses)) + 1
    card = checkpoint.inspect(str(run)).card
    assert card["training"]["best_epoch"] == best == metrics["epoch"]
    assert len(history) == metrics["stopped_at_epoch"]
    if len(history) < 12:  # stopped early: exactly `patience` epochs without a better loss
        assert len(history) == best + 2
    ending = f"stopped early at epoch {len(history)}" if len(history) < 12 else "reached the 12-epoch cap"
    assert train._ending(metrics, 12) == f"{ending} (best {best})"
    assert train._ending({"epoch": 30}, 30) == "after epoch 30"  # a fixed --epochs
    # The saved weights are the best epoch's: their held-out loss is the best one.
    parts = data.holdout(dataset.train.subset(slice(0, 300)), test=data.TEST_FRACTION, seed=0)
    from mnistgen import decoders

    again = train.test_loss(decoders.load_model(checkpoint.inspect(str(run))), parts.val, 0)["test_loss"]
    assert again == pytest.approx(losses[best - 1], abs=1e-2)
    assert card["metrics"]["val_loss"] == pytest.approx(losses[best - 1])
    resumed = train.train(ModelConfig(kind="cvae", channels=8), _folder_dataset(dataset), options, run, resume=True)
    assert resumed["already_finished"] and (resumed["epoch"], resumed["stopped_at_epoch"]) == (best, len(history))
    assert len((run / train.METRICS_FILE).read_text().splitlines()) == len(history)  # no epoch trained again


def test_fixed_epochs_mean_exactly_n(tmp_path, dataset):
    metrics = train.train(
        ModelConfig(kind="vae", channels=8),
        _folder_dataset(dataset),
        train.TrainOptions(epochs=2, companion=False),
        tmp_path,
    )
    assert metrics["epoch"] == 2 and "best_epoch" not in checkpoint.inspect(str(tmp_path)).card["training"]


def test_a_named_recipe_chooses_the_kind_of_model():
    assert train_kind(None, "vae-2d") == "vae" and train_kind(None, "cvae-2d") == "cvae"
    assert train_kind(None, None) == "cvae" and train_kind("vae", None) == "vae"
    assert train_kind("vae", "vae-2d") == "vae" and train_kind("classifier", None) == "classifier"
    assert train_kind(None, "nope") == "cvae"  # an unknown recipe: named_recipe refuses it
    refusal = "^--recipe cvae-2d trains a cvae, not a vae: drop --model, or choose a vae recipe \\(vae-2d\\)$"
    with pytest.raises(MnistgenError, match=refusal):
        train_kind("vae", "cvae-2d")
    # the default run directory: runs/vae-2d for --recipe vae-2d (it read runs/vae-Noned)
    assert run_name("vae", None, "vae-2d") == "vae-2d" and run_name("cvae", 8, None) == "cvae-8d"
    assert run_name("cvae", None, None) == "cvae" and run_name("classifier", None, "cvae") == "classifier"


def test_recipes_by_name_and_by_data_size():
    assert named_recipe("cvae-2d").latent == 2 and named_recipe("cvae-2d").epochs == 12
    assert named_recipe("cvae").latent == 16 and named_recipe("cvae").likelihood == "bernoulli"
    assert recipe_for(100).name == "small" and recipe_for(1000).name == "medium" and recipe_for(60_000).name == "full"
    with pytest.raises(MnistgenError, match="--recipe 'nope' is unknown: use one of cvae-2d, cvae"):
        named_recipe("nope")
    shipped = json.loads((checkpoint.shipped_dir() / "cvae.json").read_text())["training"]
    assert (RECIPES["cvae"].latent, RECIPES["cvae"].kl_warmup) == (16, shipped["kl_warmup"])


def test_companion_and_calibration_are_recorded_and_used(tmp_path, dataset):
    run = tmp_path / "run"
    stages = []
    heard = type("Heard", (train.TrainCallback,), {"on_stage": lambda self, text: stages.append(text)})()
    config, options = ModelConfig(kind="cvae", channels=8), train.TrainOptions(epochs=1)
    train.train(config, _folder_dataset(dataset), options, run, callback=heard)
    assert stages == [
        "after epoch 1: training the companion classifier",
        "calibrating sampling on the validation images",
    ]
    weights = checkpoint.inspect(str(run))
    card = weights.card
    assert card["companion_classifier"]["path"] == "classifier.safetensors"
    assert (run / "classifier.safetensors").is_file() and (run / "classifier.json").is_file()
    chosen = card["sampling"]
    assert chosen["prior"] in ("mixture", "fitted", "standard") and chosen["temperature"] == 1.0
    assert chosen["sharpen"] in calibrate.SHARPENS and chosen["classifier"] == "classifier.safetensors"
    assert len(chosen["candidates"]) == len(calibrate.PRIORS) * len(calibrate.SHARPENS)
    # generate, evaluate and the API verify with the model's own companion
    spec = sampling.resolve_sampling(weights, SamplingRequest(min_confidence=0.2))
    assert spec.classifier.path == run / "classifier.safetensors"
    assert spec.classifier.sha256 == card["companion_classifier"]["sha256"]
    out = tmp_path / "out.npz"
    result = runner.invoke(
        app, ["generate", "--model", str(run), "--digit", "0", "--count", "4", "--min-confidence", "0.05",
              "--format", "npz", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(np.load(out)["images"]) == 4
    from mnistgen import SyntheticMNIST  # the dataset too, with no classifier named

    synthetic = SyntheticMNIST(str(run), count=2, digits=[0], min_confidence=0.05, device="cpu")
    assert synthetic.sampling.classifier.sha256 == card["companion_classifier"]["sha256"]


def test_a_classifier_with_other_classes_is_refused(tmp_path, tiny_cvae, tiny_classifier):
    other = tmp_path / "other"
    shutil.copytree(tiny_classifier, other)
    card = json.loads((other / "model.json").read_text())
    card["classes"] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                       "Ankle boot"]  # fmt: skip
    (other / "model.json").write_text(json.dumps(card))
    weights = checkpoint.inspect(str(tiny_cvae))
    with pytest.raises(MnistgenError) as caught:
        sampling.resolve_sampling(weights, SamplingRequest(min_confidence=0.5, classifier=str(other)))
    assert str(caught.value) == (
        "--classifier tiny-classifier knows classes T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, "
        "Sneaker, Bag, Ankle boot but model tiny-cvae has 0, 1, 2, 3, 4, 5, 6, 7, 8, 9: pass a classifier trained on "
        "the model's classes, or --min-confidence 0"
    )
    result = runner.invoke(
        app, ["generate", "--model", str(tiny_cvae), "--count", "2", "--min-confidence", "0.5", "--classifier",
              str(other), "--format", "npz", "--out", str(tmp_path / "x.npz")]
    )  # fmt: skip
    assert result.exit_code == 1 and "knows classes T-shirt/top" in result.output


def test_evaluate_augment_json(tmp_path, tiny_cvae, mnist_dir):
    result = runner.invoke(
        app, ["evaluate", "--model", str(tiny_cvae), "--augment", str(mnist_dir), "--limit", "50", "--count", "10",
              "--steps", "3", "--seeds", "0,1", "--data", str(mnist_dir)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout.strip().splitlines()[-1])["augment"]
    assert found["real_images"] == 50 and found["generated_images"] == 100 and found["steps"] == 3
    assert found["seeds"] == [0, 1] and len(found["runs"]) == 2
    assert found["gain"] == pytest.approx(found["augmented_accuracy"] - found["real_accuracy"], abs=2e-4)
    assert found["gain_min"] <= found["gain"] <= found["gain_max"]
    assert found["verdict"] == scoring.augment_verdict([run["gain"] for run in found["runs"]])
    assert set(found["nearest_training_image"]) >= {"near_copies", "near_copy_rate", "threshold"}
    shown = {"helps": "helps: higher on every seed", "hurts": "hurts: lower on every seed",
             "unclear": "unclear: the seeds disagree"}  # fmt: skip
    assert "augment: verdict" in result.stderr and shown[found["verdict"]] in result.stderr  # the table
    note = "note: the generated set lowered the classifier's test accuracy on every seed; the README's \"What bounds"
    assert (note in result.stderr) == (found["verdict"] == "hurts")


@pytest.mark.parametrize(
    "gains, verdict",
    [([0.01, 0.002], "helps"), ([-0.01, -0.002], "hurts"), ([0.01, -0.002], "unclear"), ([0.0, 0.01], "unclear"),
     ([0.004], "helps")],
)  # fmt: skip
def test_the_augment_verdict_needs_every_seed_to_agree(gains, verdict):
    assert scoring.augment_verdict(gains) == verdict


def test_evaluate_augment_refuses_a_limit_without_a_set():
    result = runner.invoke(app, ["evaluate", "--limit", "5"])
    assert result.exit_code == 2 and "--limit chooses images of the --augment set" in result.output


def test_calibration_without_two_held_out_images_per_label_has_no_diversity_penalty(
    tiny_cvae, tiny_classifier, dataset
):
    first = [int(np.flatnonzero(dataset.test.labels == label)[0]) for label in range(10)]
    one_each = dataset.test.subset(np.array(first))
    chosen = calibrate.calibrate(checkpoint.inspect(str(tiny_cvae)), checkpoint.inspect(str(tiny_classifier)),
                                 one_each, "cpu")  # fmt: skip
    assert all(c["spread_ratio"] is None for c in chosen["candidates"])
    assert all(c["score"] == c["on_label"] for c in chosen["candidates"])
    assert chosen["chosen_by"].endswith("; no penalty: no label has 2 held-out images to measure spread on")
    two_each = dataset.test.subset(
        np.concatenate([np.flatnonzero(dataset.test.labels == label)[:2] for label in range(10)])
    )
    measured = calibrate.calibrate(checkpoint.inspect(str(tiny_cvae)), checkpoint.inspect(str(tiny_classifier)),
                                   two_each, "cpu")  # fmt: skip
    assert all(c["spread_ratio"] > 0 for c in measured["candidates"])
    assert "no penalty" not in measured["chosen_by"]
