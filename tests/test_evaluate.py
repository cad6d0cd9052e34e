"""The classifier, evaluate (accuracy, FID, TSTR) and generate --min-confidence."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen import checkpoint
from mnistgen import scoring as ev
from mnistgen.cli import app
from mnistgen.cli.evaluate import TRUSTED_JUDGE

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


def test_evaluate_reports_every_measure(tiny_cvae, tiny_classifier, tiny_judge, mnist_dir):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(tiny_cvae),
            "--classifier",
            str(tiny_classifier),
            "--judge",
            str(tiny_judge),
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
    assert report["tstr"]["arch"] == "judge"  # TSTR trains the judge's architecture
    assert report["judge"] == "tiny-judge" and report["verifier"] == "tiny-classifier"
    assert 0 <= samples["verifier"]["accuracy"] <= 1 and 0 <= samples["accuracy"] <= 1  # side by side
    assert "judge-feature FID" in result.stderr and "verifier accuracy" in result.stderr  # the table
    assert "judge on test images" in result.stderr
    weak = report["judge_test_accuracy"] < TRUSTED_JUDGE  # a tiny judge: its grades are flagged
    note = (
        f"note: the judge tiny-judge reads only {report['judge_test_accuracy']:.1%} of the real test images right, "
        "so its grades of the samples are no better: train it longer (train --model classifier --epochs N)"
    )
    assert (note in result.stderr.splitlines()) == weak


def test_evaluate_refuses_to_grade_with_the_verifier(tiny_cvae, tiny_classifier, tmp_path, mnist_dir):
    import shutil

    copy = tmp_path / "same-weights"  # another name, the same weights: caught by sha256
    shutil.copytree(tiny_classifier, copy)
    for judge in (str(tiny_classifier), str(copy)):
        result = runner.invoke(
            app,
            ["evaluate", "--model", str(tiny_cvae), "--classifier", str(tiny_classifier), "--judge", judge]
            + ["--data", str(mnist_dir), "--count", "10", "-q"],
        )
        assert result.exit_code == 1, result.output
        assert "is the verifier tiny-classifier (same sha256)" in result.stderr and "--judge judge" in result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_grade_reports_judge_and_verifier_side_by_side(tiny_classifier, tiny_judge, dataset):
    from mnistgen import checkpoint
    from mnistgen import classifier as clf

    judge_w, verifier_w = checkpoint.inspect(str(tiny_judge)), checkpoint.inspect(str(tiny_classifier))
    ev.check_independent(judge_w, verifier_w)  # different weights: fine
    with pytest.raises(ev.MnistgenError, match="same sha256"):
        ev.check_independent(judge_w, [verifier_w, judge_w])  # an ensemble holding the judge
    named = replace(judge_w, card={**judge_w.card, "classes": ["cat", "dog"]})  # the shipped judge knows digits only
    with pytest.raises(ev.MnistgenError) as caught:
        ev.check_independent(named, named)
    assert str(caught.value).endswith(
        "grade with an independent classifier: train another on these classes (mnistgen train --model classifier "
        "--data DIR --seed 1) and pass it as --judge"
    )
    net = clf.load(judge_w)
    test = dataset.test
    scores = ev.grade(net, test.images, test.labels, ev.reference_features(net, test), clf.verifier(verifier_w, "cpu"))
    assert scores["accuracy"] == pytest.approx(clf.accuracy(net, test), abs=1e-4)  # the judge's own figure
    verifier_net = clf.load(verifier_w)
    assert scores["verifier"]["accuracy"] == pytest.approx(clf.accuracy(verifier_net, test), abs=0.02)


def test_evaluate_scores_a_folder_of_images(tmp_path, tiny_classifier, tiny_judge, mnist_dir, dataset):
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
            "--judge",
            str(tiny_judge),
            "--data",
            str(mnist_dir),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"]["images"] == 30 and "accuracy" in report["samples"] and "test_set" not in report


def test_evaluate_grades_a_single_image_without_a_fid(tmp_path, tiny_classifier, tiny_judge, mnist_dir, dataset):
    """One image has no covariance: the FID raised LinAlgError (a traceback); now it is null."""
    from mnistgen import export

    one = tmp_path / "one.png"
    export.write_png(one, dataset.test.images[0])
    result = runner.invoke(
        app,
        ["evaluate", "--images", str(one), "--classifier", str(tiny_classifier), "--judge", str(tiny_judge)]
        + ["--data", str(mnist_dir)],
    )
    assert result.exit_code == 0, result.output
    samples = json.loads(result.stdout)["samples"]
    assert samples["images"] == 1 and samples["fid"] is None and sum(samples["class_histogram"]) == 1
    assert "- (too few images)" in result.stderr and "Warning" not in result.stderr


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
    assert "Error: --min-confidence 1: only 0.00% of samples of label 2 pass after" in result.stderr
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
    assert (
        result.exit_code == 1 and "is a cvae generator, not a classifier: pass --classifier classifier" in result.stderr
    )
    with pytest.raises(ev.MnistgenError, match=r"is a cvae generator, not a classifier: pass --judge judge$"):
        checkpoint.inspect_role(str(tiny_cvae), "--judge")  # each option names its own fix


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


def test_redraws_are_sized_to_what_the_block_misses():
    from mnistgen import sample

    assert sample.redraw_size(1, 0.99) == sample.REDRAW_CHUNK  # a few rejects: one small chunk
    assert sample.redraw_size(25, 0.9) == 48  # 90% accepted: 35 wanted, 48 decoded (three chunks of 16)
    assert sample.redraw_size(200, 0.2) == sample.BLOCK  # never more than a block at once
    for missing, rate in ((3, 0.5), (40, 0.7), (90, 0.9)):
        size = sample.redraw_size(missing, rate)
        assert size % sample.REDRAW_CHUNK == 0 and size * rate >= missing  # enough, on average


@pytest.mark.parametrize(
    "args, message",
    [
        (["--limit", "5"], "Invalid value for --limit: --limit chooses images of the --augment set: drop it, or add "
         "--augment PATH\n"),
        (["--seeds", "2,3", "--steps", "5"], "Invalid value for --seeds/--steps: --seeds and --steps would set how "
         "--augment trains: drop them, or add --augment PATH\n"),
        (["--images", "x.h5", "--temperature", "2", "--min-confidence", "0.5"],
         "Invalid value for --temperature/--min-confidence: --temperature and --min-confidence would shape a model's "
         "samples; --images are scored as they are: drop them\n"),
        (["--images", "x.h5", "--count", "10", "--prior", "auto"],  # --prior at its default is let through
         "Invalid value for --count: --count would sample a model; --images are scored as they are: drop it\n"),
        (["--images", "x.h5", "--prior", "mixture"],
         "Invalid value for --prior: --prior would shape a model's samples; --images are scored as they are: drop "
         "it\n"),
        (["--images", "x.h5", "--seed", "3", "--augment", "."],
         "Invalid value for --seed: --seed seeds a model's samples or --tstr's training; scoring --images reads none: "
         "drop it, or add --tstr\n"),
        # read, so refused only for what follows (an unknown judge), before anything loads
        (["--images", "x.h5", "--seed", "0", "--tstr", "--judge", "nope"], "Invalid value for --judge: unknown model"),
        (["--seed", "0", "--count", "10", "--prior", "auto", "--judge", "nope"], "Invalid value for --judge: unknown"),
        (["--limit", "5", "--seeds", "1,2", "--augment", ".", "--judge", "nope"], "Invalid value for --judge: unknown"),
    ],
)  # fmt: skip
def test_options_evaluate_would_not_read_are_refused(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["evaluate", *args])
    assert result.exit_code == 2, result.output
    assert f"Error: {message}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_judge_architecture_round_trips(tiny_judge, dataset):
    from mnistgen import checkpoint
    from mnistgen import classifier as clf

    weights = checkpoint.inspect(str(tiny_judge))  # the card's param_shapes match the file, batch-norm stats included
    assert weights.config.arch == "judge" and weights.card["training"]["augment"] == "auto"
    net = clf.load(weights)
    assert isinstance(net, clf.JudgeNet)
    probs, feats = clf.predict(net, dataset.test.images[:50])
    assert feats.shape == (50, 256) and np.allclose(probs.sum(1), 1, atol=1e-5)
    again = clf.predict(clf.load(weights), dataset.test.images[:50])[0]
    assert np.array_equal(probs, again)  # eval mode: batch norm's running statistics, no dropout
    exported = clf.Judge(weights, "cpu", "fp32")(dataset.test.images[:50])  # the predictor path evaluate/generate use
    assert np.allclose(exported, probs, atol=1e-4)


def test_training_the_judge_architecture_is_quiet(dataset):
    import warnings

    from mnistgen import classifier as clf
    from mnistgen.config import ClassifierConfig

    options = clf.ClassifierOptions(epochs=1, batch_size=64, seed=0)
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        clf.train(dataset.train.subset(slice(0, 128)), None, options, ClassifierConfig(arch="judge", channels=8))
    assert [str(w.message) for w in heard if "batch" in str(w.message) or "global mean" in str(w.message)] == []


def test_classifier_training_honours_eval_every(dataset):
    from mnistgen import classifier as clf

    assert [e for e in range(5) if clf.evaluated(e, 5, 2)] == [1, 3, 4]  # epochs 2, 4 and the last
    options = clf.ClassifierOptions(epochs=3, batch_size=64, seed=0, eval_every=2)
    _, history = clf.train(dataset.train.subset(slice(0, 128)), dataset.test, options)
    assert ["test_accuracy" in h for h in history] == [False, True, True]


def test_arch_is_only_for_the_classifier(tmp_path):
    result = runner.invoke(app, ["train", "--model", "cvae", "--arch", "judge", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "add --model classifier" in result.stderr


def test_an_ensemble_verifier_is_deterministic_and_needs_every_member(tiny_cvae, tiny_classifier, tiny_judge):
    from mnistgen import checkpoint, decoders, sample, sampling
    from mnistgen import classifier as clf

    generator = checkpoint.inspect(str(tiny_cvae))
    members = [checkpoint.inspect(str(tiny_classifier)), checkpoint.inspect(str(tiny_judge))]
    decoder = decoders.make_decoder(generator, "cpu")
    labels = [1]  # the digit the tiny models agree on most
    runs = []
    for _ in range(2):
        spec = sampling.Sampling(min_confidence=0.1, classifier=members)  # all must agree
        confidence = decoders.confidence_filter(spec, "cpu")
        assert isinstance(confidence.judge, clf.Ensemble)
        runs.append(sample.Sampler(decoder, spec, confidence).arrays(labels, 40, 5))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    images, found = runs[0][0], runs[0][1]
    for weights in members:  # every member on its own gives every kept sample its label with >= 0.1
        probs = clf.Judge(weights, "cpu")(images)
        assert (probs[np.arange(len(found)), found] >= 0.1 - 1e-6).all()
    ensemble, first = clf.verifier(members, "cpu"), clf.verifier(members[:1], "cpu")
    assert isinstance(first, clf.Judge)  # one member: the classifier itself
    assert (ensemble(images) <= first(images)).all()  # agreeing is stricter than any one member


def test_comma_separated_classifiers_verify_as_an_ensemble(tmp_path, tiny_cvae, tiny_classifier, tiny_judge, mnist_dir):
    import h5py

    from mnistgen import checkpoint
    from mnistgen import classifier as clf

    pair = f"{tiny_classifier},{tiny_judge}"
    args = ["generate", "--model", str(tiny_cvae), "-d", "1", "-n", "30", "--seed", "4", "--min-confidence", "0.1"]
    runs = [runner.invoke(app, [*args, "--classifier", pair, "-o", str(tmp_path / f"{i}.h5"), "-q"]) for i in "ab"]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert np.array_equal(a["images"][:], b["images"][:])  # deterministic under --seed
        images = a["images"][:]
    for member in (tiny_classifier, tiny_judge):  # every member gives every kept sample its label
        assert (clf.Judge(checkpoint.inspect(str(member)), "cpu")(images)[:, 1] >= 0.1 - 1e-6).all()

    graded = runner.invoke(
        app,
        ["evaluate", "--model", str(tiny_cvae), "--classifier", pair, "--min-confidence", "0.1", "-n", "10"]
        + ["--judge", str(tiny_judge), "--data", str(mnist_dir)],
    )
    assert graded.exit_code == 1  # the judge is one of the members: refused, never graded
    assert "the judge tiny-judge is the verifier tiny-judge (same sha256)" in graded.stderr

    unknown = runner.invoke(app, [*args, "--classifier", f"{tiny_classifier},nosuch", "-o", str(tmp_path / "c")])
    assert unknown.exit_code == 2 and "nosuch" in unknown.stderr and not (tmp_path / "c").exists()


def test_a_card_verifier_pair_in_a_directory_with_a_comma(tmp_path, tiny_cvae, tiny_classifier, tiny_judge):
    import shutil

    import h5py

    from mnistgen import checkpoint
    from mnistgen import classifier as clf

    home = tmp_path / "runs, copied"  # the card names its verifiers by file name, joined by a comma
    home.mkdir()
    for source, stem in ((tiny_cvae, "model"), (tiny_classifier, "a"), (tiny_judge, "b")):
        for suffix in (".safetensors", ".json"):
            shutil.copy(source / f"model{suffix}", home / f"{stem}{suffix}")
    card = json.loads((home / "model.json").read_text())
    card.setdefault("sampling", {}).update(classifier="a.safetensors,b.safetensors", min_confidence=0.1)
    (home / "model.json").write_text(json.dumps(card))
    args = ["generate", "--model", str(home / "model.safetensors"), "-d", "1", "-n", "20", "--seed", "2", "-q"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "pair.h5")])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "pair.h5") as f:
        images = f["images"][:]
    for member in ("a", "b"):  # both verified, each found beside the model
        assert (
            clf.Judge(checkpoint.inspect(str(home / f"{member}.safetensors")), "cpu")(images)[:, 1] >= 0.1 - 1e-6
        ).all()


@pytest.mark.parametrize(
    "where, message",
    [
        ("images", "Error: the images have label 12, but the judge knows classes 0-9"),
        ("augment", "Error: the --augment images have label 12, but the judge knows classes 0-9"),
    ],
)
def test_labels_the_judge_lacks_are_refused(tmp_path, mnist_dir, dataset, where, message):
    eleven = tmp_path / "eleven.npz"  # a labelled set with a twelfth class
    np.savez(eleven, images=dataset.train.images[:24], labels=np.r_[dataset.train.labels[:23], 12].astype(np.uint8))
    plain = tmp_path / "plain.npz"
    np.savez(plain, images=dataset.train.images[:24], labels=dataset.train.labels[:24].astype(np.uint8))
    images, extra = (eleven, []) if where == "images" else (plain, ["--augment", str(eleven), "--steps", "1"])
    result = runner.invoke(app, ["evaluate", "--images", str(images), "--data", str(mnist_dir), "--quiet", *extra])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"{message}: grade images of the judge's classes (pass --judge trained on them)\n"


def test_a_classifier_learns_every_class_of_its_data(tmp_path, dataset):
    import mnistgen

    data = tmp_path / "thirteen.npz"  # labels 0-12: more than MNIST's ten
    labels = np.arange(64) % 13
    np.savez(data, images=dataset.train.images[:64], labels=labels.astype(np.uint8))
    mnistgen.fit(data, tmp_path / "run", model="classifier", epochs=1)
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["config"]["num_classes"] == 13


def test_evaluate_reports_its_stages_in_order_with_their_totals(tiny_cvae, tiny_classifier, tiny_judge, mnist_dir):
    import mnistgen

    heard = []
    report = mnistgen.evaluate(
        str(tiny_cvae),
        count=10,
        data_dir=mnist_dir,
        classifier=str(tiny_classifier),
        judge=str(tiny_judge),
        tstr=True,
        device="cpu",
        augment=mnist_dir,
        limit=50,
        seeds=[0],
        steps=3,
        on_progress=lambda stage, done, total: heard.append((stage, done, total)),
    )
    stages: dict = {}  # stage -> its (done, total) calls, the stages in the order they came
    for stage, done, total in heard:
        stages.setdefault(stage, []).append((done, total))
    tstr_steps = ev.TSTR_EPOCHS * (100 // 64)  # 100 samples in batches of 64: one step an epoch
    assert [(stage, calls[0][1]) for stage, calls in stages.items()] == [
        ("judge on 200 test images", 200),
        ("test-set loss on 200 images", 200),
        ("sampling 100 images", 100),
        ("grading 100 images", 100),
        ("TSTR: training on generated images", tstr_steps),
        ("TSTR: training on real images", tstr_steps),
        ("augment seed 0: real alone", 3),
        ("augment seed 0: real + generated", 3),
        ("near-copy search: 100 images", 100 + 200),  # the samples, then the test images
    ]
    changes = [stage for i, (stage, _, _) in enumerate(heard) if i == 0 or heard[i - 1][0] != stage]
    assert changes == list(stages)  # one stage after another: none comes back
    for calls in stages.values():
        done, totals = [d for d, _ in calls], {t for _, t in calls}
        assert done[0] == 0 and done == sorted(done) and totals == {done[-1]}  # 0 up to its total, known at once
    assert [d for d, _ in stages["augment seed 0: real alone"]] == [0, 1, 2, 3]  # every optimisation step
    assert report["augment"]["steps"] == 3 and report["classes"] == [str(d) for d in range(10)]


@pytest.mark.parametrize("quiet", [False, True])
def test_evaluate_shows_progress_on_stderr_unless_quiet(tiny_cvae, tiny_classifier, tiny_judge, mnist_dir, quiet):
    argv = ["evaluate", "--model", str(tiny_cvae), "--classifier", str(tiny_classifier), "--judge", str(tiny_judge),
            "--data", str(mnist_dir), "--count", "10", "--augment", str(mnist_dir), "--limit", "50", "--steps", "3",
            "--seeds", "0"]  # fmt: skip
    result = runner.invoke(app, argv + (["--quiet"] if quiet else []))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["augment"]["seeds"] == [0]  # stdout is the JSON line alone
    if quiet:
        assert result.stderr == ""  # no bar, no table
        return
    stages = ["judge on 200 test images", "sampling 100 images", "grading 100 images", "augment seed 0: real alone",
              "augment seed 0: real + generated", "near-copy search: 100 images"]  # fmt: skip
    lines = result.stderr.splitlines()
    shown = [next(i for i, line in enumerate(lines) if line.startswith(stage)) for stage in stages]
    table = next(i for i, line in enumerate(lines) if "judge-feature FID" in line)
    assert shown == sorted(shown) and shown[-1] < table  # a line per stage, in order, then the table
    assert any(" 3/3 " in line for line in lines if line.startswith(stages[3]))  # steps done of the training's
