"""The classifier, evaluate (accuracy, FID, TSTR) and generate --min-confidence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen import evaluate as ev
from mnistgen.cli import app

runner = CliRunner()


def test_frechet_distance_is_zero_for_the_same_set_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 8))
    assert ev.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert ev.frechet_distance(a, a + 2.0) == pytest.approx(8 * 4.0, rel=1e-6)  # |mu shift|^2
    b = rng.standard_normal((2000, 8)) * 3
    assert ev.frechet_distance(a, b) > 8 * (3 - 1) ** 2 * 0.9  # sum over dims of (sigma_a - sigma_b)^2


def test_classifier_learns_and_round_trips(tiny_classifier, dataset):
    from mnistgen import checkpoint
    from mnistgen import classifier as clf

    weights = checkpoint.inspect(str(tiny_classifier))
    assert weights.is_classifier and weights.card["config"]["hidden"] == 256
    net = clf.load(weights)
    assert clf.accuracy(net, dataset.test) > 0.4  # 10% is chance
    probs, feats = clf.predict(net, dataset.test.images[:7])
    assert probs.shape == (7, 10) and np.allclose(probs.sum(1), 1, atol=1e-5) and feats.shape == (7, 256)


def test_train_classifier_command(tmp_path, mnist_dir):
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "classifier",
            "--data",
            str(mnist_dir),
            "--epochs",
            "1",
            "--limit",
            "256",
            "--out",
            str(tmp_path / "c"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads(result.stdout)["test_accuracy"] <= 1
    assert json.loads((tmp_path / "c" / "model.json").read_text())["config"]["kind"] == "classifier"


def test_evaluate_reports_every_measure(tiny_cvae, tiny_classifier, mnist_dir):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tiny_cvae),
            "--classifier",
            str(tiny_classifier),
            "--data",
            str(mnist_dir),
            "--count",
            "20",
            "--tstr",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["test_set"]) == {"test_loss", "test_rec", "test_kl"}
    samples = report["samples"]
    assert samples["images"] == 200 and sum(samples["class_histogram"]) == 200
    assert set(samples["accuracy_per_label"]) == {str(d) for d in range(10)} and samples["fid"] > 0
    assert report["tstr"]["train_images"] == 200 and 0 <= report["tstr"]["synthetic_accuracy"] <= 1
    assert "classifier-feature FID" in result.stderr  # the table


def test_evaluate_scores_a_folder_of_images(tmp_path, tiny_classifier, mnist_dir, dataset):
    from mnistgen import export

    for i in range(30):
        (tmp_path / "d" / str(dataset.test.labels[i])).mkdir(parents=True, exist_ok=True)
        export.write_png(tmp_path / "d" / str(dataset.test.labels[i]) / f"{i}.png", dataset.test.images[i])
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--images",
            str(tmp_path / "d"),
            "--classifier",
            str(tiny_classifier),
            "--data",
            str(mnist_dir),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"]["images"] == 30 and "accuracy" in report["samples"] and "test_set" not in report


def test_min_confidence_keeps_only_confident_samples_deterministically(tmp_path, tiny_cvae, tiny_classifier):
    import h5py

    from mnistgen import checkpoint
    from mnistgen import classifier as clf

    args = [
        "generate",
        "--model",
        str(tiny_cvae),
        "-d",
        "1",
        "-n",
        "40",
        "--seed",
        "3",
        "--min-confidence",
        "0.1",
        "--classifier",
        str(tiny_classifier),
        "-q",
    ]
    first = runner.invoke(app, args + ["-o", str(tmp_path / "a.h5")])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["min_confidence"] == 0.1 and 0 < summary["acceptance_rate"] <= 1
    sharded = [runner.invoke(app, args + ["-o", str(tmp_path / "b.h5"), "--shard", f"{i}/2"]) for i in range(2)]
    assert all(r.exit_code == 0 for r in sharded)
    judge = clf.Judge(checkpoint.inspect(str(tiny_classifier)), "cpu")  # the judge generate uses
    with (
        h5py.File(tmp_path / "a.h5") as f,
        h5py.File(tmp_path / "b.shard-00000-of-00002.h5") as g,
        h5py.File(tmp_path / "b.shard-00001-of-00002.h5") as h,
    ):
        images = f["images"][:]
        assert np.array_equal(images, np.concatenate([g["images"][:], h["images"][:]]))
    assert (judge(images)[:, 1] >= 0.1).all()
    eager, _ = clf.predict(judge.net, images)
    assert np.abs(eager - judge(images)).max() < 0.05  # the predictor (bf16 where fast) agrees with eager


def test_impossible_confidence_is_refused(tmp_path, tiny_cvae, tiny_classifier):
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_cvae),
            "-d",
            "2",
            "-n",
            "5",
            "--min-confidence",
            "1.0",
            "--classifier",
            str(tiny_classifier),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1
    assert "Error: --min-confidence 1.0: only 0.00% of samples of label 2 pass after" in result.stderr
    assert "lower --min-confidence or use a better model" in result.stderr


def test_classifier_is_not_a_generator(tmp_path, tiny_classifier, tiny_cvae):
    result = runner.invoke(app, ["generate", "--model", str(tiny_classifier), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "is the classifier, not a generator" in result.stderr
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_cvae),
            "--min-confidence",
            "0.5",
            "--classifier",
            str(tiny_cvae),
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 1 and "is a cvae generator, not a classifier" in result.stderr


def test_a_filtered_block_is_the_same_whichever_part_is_asked_for(tiny_cvae):
    from mnistgen import checkpoint, decoders, sample

    decoder = decoders.make_decoder(checkpoint.inspect(str(tiny_cvae)), "cpu")
    plain = sample.block_batch(decoder, 7, 1, 0, 0, sample.BLOCK).images.astype(np.float32).mean(axis=(1, 2))
    cut = np.percentile(plain, 5)

    def judge(images):  # accepts the brighter ~95% of images: a stand-in classifier, the same for every run
        score = (images.astype(np.float32).mean(axis=(1, 2)) > cut).astype(np.float32)
        return np.stack([1 - score, score], axis=1)

    whole_filter = sample.ConfidenceFilter(judge, 0.5)
    whole = sample.block_batch(decoder, 7, 1, 0, 0, sample.BLOCK, confidence=whole_filter)
    assert (judge(whole.images)[:, 1] == 1).all()
    rejected = whole_filter.tried - whole_filter.accepted
    assert (
        0 < rejected and whole_filter.tried <= sample.BLOCK + 8 * sample.REDRAW_CHUNK
    )  # a few small redraws, not whole blocks
    part = sample.block_batch(decoder, 7, 1, 0, 100, 180, confidence=sample.ConfidenceFilter(judge, 0.5))
    assert np.array_equal(part.images, whole.images[100:180]) and np.array_equal(part.z, whole.z[100:180])


def test_sampling_options_with_images_are_refused(tmp_path, mnist_dir):
    images = mnist_dir / "t10k-images-idx3-ubyte.gz"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--images",
            str(images),
            "--temperature",
            "2",
            "--min-confidence",
            "0.5",
            "--data",
            str(mnist_dir),
        ],
    )
    assert result.exit_code == 2, result.output
    assert (
        "Error: Invalid value for --images: --temperature, --min-confidence shape a model's samples; --images are "
        "scored as they are: drop them" in result.stderr
    )
