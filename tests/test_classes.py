"""Class names across sets: a user's ImageFolder names its classes, and every set compared with it
(train --test, evaluate's test images, judge, model and --augment set) must name them alike; a
classifier trained on named classes keeps them, and holds out its own test share.

Every set is an ImageFolder built in tmp_path from the fixture's digits; classifiers train for one
epoch (seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_sources import image_folder
from typer.testing import CliRunner

from mnistgen import checkpoint, data, export
from mnistgen.cli import app
from mnistgen.errors import MnistgenError

runner = CliRunner()
GREEK = {0: "alpha", 1: "bravo", 2: "charlie"}
OTHER = {0: "cat", 1: "dog", 2: "fish"}
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PER_CLASS = 20
SAME = "use sets with the same classes (class folders named alike)"


def folder(root: Path, dataset, names: dict, skip: int = 0) -> Path:
    """ROOT/<name>/<index>.png: PER_CLASS fixture images of each digit in `names` (after `skip`)."""
    return image_folder(root, dataset, PER_CLASS, names, skip)


@pytest.fixture
def greek_classifier(tmp_path, dataset) -> Path:
    run = tmp_path / "greek-classifier"
    argv = ["train", "--model", "classifier", "--data", str(folder(tmp_path / "g", dataset, GREEK)), "--epochs", "1"]
    result = runner.invoke(app, [*argv, "--out", str(run), "-q"])
    assert result.exit_code == 0, result.output
    return run


def test_a_classifier_keeps_its_class_names_and_holds_out_a_test_share(greek_classifier):
    card = checkpoint.inspect(str(greek_classifier)).card
    assert card["classes"] == ["alpha", "bravo", "charlie"]
    held = card["training"]["holdout"]
    assert (held["test"], held["val_images"]) == ("held out", 0)  # no early stopping: nothing kept for it
    assert held["train_images"] + held["test_images"] == 3 * PER_CLASS and held["test_images"] > 0
    assert card["training"]["train_images"] == held["train_images"]


def test_train_refuses_a_test_set_of_other_classes(tmp_path, dataset):
    greek, other = folder(tmp_path / "g", dataset, GREEK), folder(tmp_path / "o", dataset, OTHER)
    for kind in ("classifier", "cvae"):
        run = tmp_path / f"run-{kind}"
        argv = ["train", "--model", kind, "--data", str(greek), "--test", str(other), "--epochs", "1", "-q"]
        result = runner.invoke(app, [*argv, "--out", str(run)])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"Error: the --test images (cat, dog, fish) and the training data {greek} (alpha, bravo, charlie) name "
            f"different classes: {SAME}\n"
        )
        assert not run.exists()


def test_evaluate_refuses_a_judge_of_other_classes(tmp_path, dataset):
    test = folder(tmp_path / "t", dataset, GREEK, skip=PER_CLASS)
    result = runner.invoke(app, ["evaluate", "--images", str(test), "--test", str(test), "-q"])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: the test images (alpha, bravo, charlie) and --judge judge (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) name "
        "different classes: pass --judge, a classifier trained on them (mnistgen train --model classifier --data DIR)\n"
    )


def test_evaluate_augment_on_named_classes_needs_no_mnist(tmp_path, dataset, greek_classifier, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "empty-cache"))  # no MNIST anywhere
    real = folder(tmp_path / "real", dataset, GREEK, skip=2 * PER_CLASS)
    test = folder(tmp_path / "test", dataset, GREEK, skip=3 * PER_CLASS)
    generated = folder(tmp_path / "gen", dataset, GREEK, skip=4 * PER_CLASS)
    argv = ["evaluate", "--images", str(generated), "--test", str(test), "--judge", str(greek_classifier)]
    result = runner.invoke(app, [*argv, "--augment", str(real), "--steps", "5", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["augment"]["real_images"] == 3 * PER_CLASS and report["augment"]["test_images"] == 3 * PER_CLASS
    other = folder(tmp_path / "other", dataset, OTHER)
    refused = runner.invoke(app, [*argv, "--augment", str(other), "--steps", "5", "-q"])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        "Error: the --augment images (cat, dog, fish) and the test images (alpha, bravo, charlie) name different "
        f"classes: {SAME}\n"
    )
    tstr = runner.invoke(app, [*argv, "--tstr", "-q"])
    assert tstr.exit_code == 1, tstr.output
    assert tstr.stderr == "Error: --tstr trains a classifier on real training images: pass --data with them\n"


def test_evaluate_images_of_named_classes_has_no_digit_verifier(tmp_path, dataset, greek_classifier):
    """The shipped verifier knows digits 0-9: beside a judge of other classes it would grade by
    index (it read 26% "on-label"), so it is left out, and refused when asked for."""
    test = folder(tmp_path / "test", dataset, GREEK, skip=3 * PER_CLASS)
    generated = folder(tmp_path / "gen", dataset, GREEK, skip=4 * PER_CLASS)
    argv = ["evaluate", "--images", str(generated), "--test", str(test), "--judge", str(greek_classifier), "-q"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "verifier" not in report and "verifier" not in report["samples"]
    refused = runner.invoke(app, [*argv, "--classifier", "classifier"])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        "Error: --classifier classifier knows classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 but the judge greek-classifier has "
        "alpha, bravo, charlie: pass a classifier trained on the judge's classes, or leave --classifier out\n"
    )


def test_evaluate_shows_a_named_judges_classes_by_name(tmp_path, dataset, greek_classifier):
    test = folder(tmp_path / "test", dataset, GREEK, skip=3 * PER_CLASS)
    generated = folder(tmp_path / "gen", dataset, GREEK, skip=4 * PER_CLASS)
    argv = ["evaluate", "--images", str(generated), "--test", str(test), "--judge", str(greek_classifier)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == list(GREEK.values())  # beside the JSON keys, which stay label numbers
    assert set(report["samples"]["accuracy_per_label"]) == {"0", "1", "2"}
    lines = result.stderr.splitlines()
    row = next(i for i, line in enumerate(lines) if "per label (judge)" in line)
    per_label = lines[row]
    assert "judge accuracy" in lines[row - 1]  # the judge's figures, under the judge's row, not the verifier's
    histogram = [line for line in result.stderr.splitlines() if "predicted classes" in line][0]
    counts = report["samples"]["class_histogram"]
    assert "alpha:" in per_label and " ".join(f"{n}:{c}" for n, c in zip(GREEK.values(), counts)) in histogram


def test_evaluate_folds_a_long_class_name_and_keeps_its_accuracy(tmp_path, dataset):
    """A 120-character class folder: the table cut it with "…", and the accuracy beside it with it."""
    long = {0: "alpha", 1: "b" * 120, 2: "charlie"}
    judge = tmp_path / "judge"
    argv = ["train", "--model", "classifier", "--data", str(folder(tmp_path / "g", dataset, long)), "--epochs", "1"]
    assert runner.invoke(app, [*argv, "--out", str(judge), "-q"]).exit_code == 0
    test = folder(tmp_path / "test", dataset, long, skip=3 * PER_CLASS)
    generated = folder(tmp_path / "gen", dataset, long, skip=4 * PER_CLASS)
    result = runner.invoke(app, ["evaluate", "--images", str(generated), "--test", str(test), "--judge", str(judge)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    values = "".join(line.split("│")[2].strip() for line in result.stderr.splitlines() if line.count("│") == 3)
    accuracy = report["samples"]["accuracy_per_label"]["1"]
    assert "…" not in result.stderr and f"{long[1]}:{accuracy:.1%}" in values
    assert f"{long[1]}:{report['samples']['class_histogram'][1]}" in values


def test_labels_by_number_agree_with_digit_names():
    data.check_same_classes(np.array([0, 3]), [], "digits", [str(i) for i in range(10)], "a digit model")
    data.check_same_classes(np.array([2]), ["a", "b", "c"], "named", ["a", "b", "c", "d"], "a model with more")
    data.check_same_classes(np.array([1]), [], "by number", ["a", "b"], "a named model")  # nothing to contradict
    with pytest.raises(MnistgenError, match=r"^named \(b\) and a model \(a, c\) name different classes"):
        data.check_same_classes(np.array([1]), ["a", "b"], "named", ["a", "c"], "a model")


def test_a_limit_keeps_every_class_of_a_set_listed_class_by_class(tmp_path, dataset):
    from mnistgen import sources, train

    greek = sources.load(folder(tmp_path / "g", dataset, GREEK), need_labels=True)  # read folder by folder
    limited, record = train.select(greek, limit=7)
    assert np.bincount(limited.train.labels).tolist() == [3, 2, 2] and record == {"limit": 7}
    firsts = [np.flatnonzero(greek.train.labels == label)[:2] for label in range(3)]  # each class's first, in order
    assert np.array_equal(limited.train.images[[0, 3, 5]], greek.train.images[[f[0] for f in firsts]])
    mixed = train.select(dataset, limit=7)[0]  # MNIST's own order is not by class: its first 7, as ever
    assert np.array_equal(mixed.train.labels, dataset.train.labels[:7])


def test_a_model_generates_the_labels_it_trained_on(tmp_path, dataset):
    digits = folder(tmp_path / "d", dataset, {3: "3", 7: "7"})  # digit folders are labels: a 10-label model
    run = tmp_path / "run"
    argv = ["train", "--model", "cvae", "--data", str(digits), "--epochs", "1", "--channels", "4", "--no-classifier"]
    trained = runner.invoke(app, [*argv, "--out", str(run), "-q"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "synth"
    result = runner.invoke(app, ["generate", "--model", str(run), "-n", "2", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == [3, 7]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["3", "7"]
    every = runner.invoke(app, ["generate", "--model", str(run), "-d", "all", "-n", "2", "-o", str(tmp_path / "a.h5")])
    assert every.exit_code == 0, every.output  # all: every label it trained on, not 0-9
    assert json.loads(every.stdout)["labels"] == [3, 7]
    refused = runner.invoke(app, ["generate", "--model", str(run), "-d", "0", "-o", str(tmp_path / "zero"), "-q"])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        f"Error: --digit 0: model {run.name} saw no training images of label 0 (it was trained on 3, 7): "
        "generate those\n"
    )
    assert not (tmp_path / "zero").exists()
    by_class = runner.invoke(app, ["generate", "--model", str(run), "--class", "0", "-o", str(tmp_path / "zero"), "-q"])
    assert by_class.exit_code == 1, by_class.output  # the option the user gave
    assert by_class.stderr == (
        f"Error: --class 0: model {run.name} saw no training images of class 0 (it was trained on 3, 7): "
        "generate those\n"
    )
    every = runner.invoke(
        app, ["generate", "--model", str(run), "--class", "all", "-n", "2", "-o", str(tmp_path / "c.h5")]
    )
    assert every.exit_code == 0, every.output  # --class all, as --digit all
    assert json.loads(every.stdout)["labels"] == [3, 7]


def test_generated_files_carry_the_class_names_back(tmp_path, dataset):
    from mnistgen import sources

    run = tmp_path / "run"
    argv = ["train", "--model", "cvae", "--data", str(folder(tmp_path / "g", dataset, GREEK)), "--epochs", "1"]
    trained = runner.invoke(app, [*argv, "--channels", "4", "--no-classifier", "--out", str(run), "-q"])
    assert trained.exit_code == 0, trained.output
    with Image.open(run / "samples" / "epoch-001.png") as grid:  # a row per class, not 10 rows cycling through 3
        assert grid.size[1] == 3 * (28 + export.GRID_PAD) - export.GRID_PAD
    for name in ("synth.h5", "synth.npz", "synth"):  # synth/: PNGs in 0/ 1/ 2/, named by its mnistgen.json
        argv = ["generate", "--model", str(run), "-d", "all", "-n", "3", "-o", str(tmp_path / name), "-q"]
        result = runner.invoke(app, argv)  # a 3-class model: all is its three labels
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["classes"] == ["alpha", "bravo", "charlie"]
        loaded = sources.load(tmp_path / name, need_labels=True)  # train --data synth.h5 keeps the names
        assert loaded.classes == ["alpha", "bravo", "charlie"] and np.bincount(loaded.train.labels).tolist() == [3] * 3
    assert sources.recorded_classes('["a", "a"]', np.array([0])) == []  # repeated names: labels by number
    assert sources.recorded_classes('["a"]', np.array([1])) == []  # a label without a name
    assert sources.recorded_classes("not json", np.array([0])) == []


def test_evaluate_test_alone_takes_tstr_from_the_mnist_cache(tmp_path, mnist_dir, tiny_cvae, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / data.MNIST_SUBDIR).symlink_to(mnist_dir)
    monkeypatch.setenv(data.CACHE_ENV, str(cache))
    test = mnist_dir / "t10k-images-idx3-ubyte.gz"
    argv = ["evaluate", "--model", str(tiny_cvae), "--count", "10", "--tstr", "--test", str(test), "-q"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "tstr" in json.loads(result.stdout)


def test_interpolate_and_encode_take_class_names_as_generate_does(tmp_path, tiny_cvae, dataset):
    """A model with named classes: its names are labels wherever labels are given (they were a
    TypeError in Model.interpolate, and a usage error for --digits and --labels)."""
    import shutil

    import mnistgen

    named = tmp_path / "named"
    shutil.copytree(tiny_cvae, named)
    card_path = named / "model.json"
    card = json.loads(card_path.read_text())
    card["classes"] = WORDS
    card_path.write_text(json.dumps(card))
    model = mnistgen.load(str(named))
    by_name = model.interpolate(digits=["three", "eight"], steps=3)
    assert np.array_equal(by_name, model.interpolate(digits=[3, 8], steps=3))
    images = dataset.test.images[:2]
    assert np.array_equal(model.encode(images, ["seven"])[0], model.encode(images, [7])[0])
    assert np.array_equal(model.grid(3, digit="seven")[0], model.grid(3, digit=7)[0])
    with pytest.raises(mnistgen.MnistgenError) as caught:
        model.interpolate(digits=["three", "eleven"], steps=3)
    assert str(caught.value) == (
        "--digits 'eleven' is not a label of model tiny-cvae: pass an index 0-9 or one of its classes (zero, one, two, "
        "three, four, five, six, seven, eight, nine)"
    )
    out = tmp_path / "walk.png"
    result = runner.invoke(
        app, ["interpolate", "--model", str(named), "--digits", "three,8", "--to", "png", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()


SORTED_WORDS = sorted(WORDS)  # an ImageFolder's order: "zero" is label 9, "eight" label 0


def renamed(source: Path, run: Path, classes: list, companion: Path | None = None) -> Path:
    """A copy of the run directory `source` whose card names `classes`; with `companion`, that
    classifier (renamed alike) beside it as the card's verifier, as train writes it."""
    import shutil

    shutil.copytree(source, run)
    card = json.loads((run / "model.json").read_text())
    card["classes"] = classes
    if companion is not None:
        renamed(companion, run / "companion", classes)
        for suffix in (".safetensors", ".json"):
            (run / "companion" / f"model{suffix}").rename(run / f"classifier{suffix}")
        card.setdefault("sampling", {})["classifier"] = "classifier.safetensors"
    (run / "model.json").write_text(json.dumps(card))
    return run


def test_evaluate_verifies_a_named_model_with_its_own_classes(
    tmp_path, mnist_dir, tiny_cvae, tiny_classifier, tiny_judge
):
    """A model of named classes is verified by its companion, as generate verifies it; the shipped
    digit classifier would grade its "zero"s by index (0.00%): refused when named, left out when not."""
    judge = renamed(tiny_judge, tmp_path / "judge", SORTED_WORDS)
    plain = renamed(tiny_cvae, tmp_path / "plain", SORTED_WORDS)
    own = renamed(tiny_cvae, tmp_path / "own", SORTED_WORDS, companion=tiny_classifier)
    argv = ["evaluate", "--count", "10", "--data", str(mnist_dir), "--judge", str(judge)]
    result = runner.invoke(app, [*argv, "--model", str(own), "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verifier"] == "tiny-classifier" and "verifier" in report["samples"]  # its companion
    result = runner.invoke(app, [*argv, "--model", str(plain)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    note = (
        "no verifier accuracy: classifier knows classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, not those of model tiny-cvae "
        "(eight, five, four, nine, one, seven, six, three, two, zero); pass --classifier, one trained on them"
    )
    assert report["verifier_note"] == note and "verifier" not in report and "verifier" not in report["samples"]
    assert f"note: {note}\n" in result.stderr and "verifier accuracy (" not in result.stderr  # no 0.00% row
    for model in (plain, own):
        refused = runner.invoke(app, [*argv, "--model", str(model), "--classifier", "classifier", "-q"])
        assert refused.exit_code == 1, refused.output
        assert refused.stderr == (  # generate's message; leaving --classifier out is evaluate's way out
            "Error: --classifier classifier knows classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 but model tiny-cvae has eight, "
            "five, four, nine, one, seven, six, three, two, zero: pass a classifier trained on the model's classes, "
            "or leave --classifier out\n"
        )


def test_a_class_name_given_as_a_digit_names_the_keyword_that_takes_it(tmp_path, tiny_cvae):
    """`generate(digit="É")` said only "give a label index": the names go to classes=, as --class."""
    import mnistgen
    from mnistgen.labels import names_fix

    letters = ["A", "É", "C", "D", "E", "F", "G", "H", "I", "J"]
    model = mnistgen.load(str(renamed(tiny_cvae, tmp_path / "letters", letters)), device="cpu")
    with pytest.raises(MnistgenError) as caught:
        model.generate(digit="É", count=1)
    assert str(caught.value) == "digit 'É': digit= takes label indices (0 or more); give class names as classes='É'"
    with pytest.raises(MnistgenError) as caught:
        model.generate(digit=np.array(["É", "A"]), count=1)
    assert str(caught.value).endswith("give class names as classes=['É', 'A']")  # numpy's text shown as Python's
    assert model.generate(classes="É", count=2, seed=0)[1].tolist() == [1, 1]  # the fix, as named
    fix = "--digit takes label indices (0 or more); give class names as --class É,A"  # the command line's words
    assert names_fix("--digit", ["É", "A"]) == fix


def test_evaluate_images_verifies_with_the_companion_of_the_model_that_made_them(
    tmp_path, mnist_dir, tiny_cvae, tiny_classifier, tiny_judge
):
    """An own-data model's generated file, scored with --images and no --classifier: the shipped digit
    classifier knows none of its classes (no verifier row), but the file records its model, whose
    companion does; once that model is moved or changed, the images are verified as any tool's."""
    import mnistgen

    judge = renamed(tiny_judge, tmp_path / "judge", SORTED_WORDS)
    own = renamed(tiny_cvae, tmp_path / "own", SORTED_WORDS, companion=tiny_classifier)
    synth = tmp_path / "synth.h5"
    made = runner.invoke(app, ["generate", "--model", str(own), "-n", "2", "-o", str(synth), "--seed", "1", "-q"])
    assert made.exit_code == 0, made.output
    kept = (
        "verifier: tiny-classifier, the companion classifier of model tiny-cvae "
        f"({own.resolve() / 'model.safetensors'}), which generated these images; pass --classifier to choose another"
    )
    shipped = (
        "no verifier accuracy: classifier knows classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, not those of the judge "
        "tiny-judge (eight, five, four, nine, one, seven, six, three, two, zero); pass --classifier, one trained on "
        "them"
    )
    argv = ["evaluate", "--images", str(synth), "--judge", str(judge), "--data", str(mnist_dir)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verifier"] == "tiny-classifier" and report["verifier_note"] == kept
    assert report["samples"]["verifier"]["accuracy"] >= 0 and f"note: {kept}\n" in result.stderr
    evaluate = dict(images=synth, judge=str(judge), data_dir=mnist_dir, device="cpu")
    assert mnistgen.evaluate(**evaluate) == report
    named = mnistgen.evaluate(**evaluate, classifier=str(own / "classifier.safetensors"))
    assert named["verifier"] == "tiny-classifier" and "verifier_note" not in named  # chosen: nothing to say
    own.rename(tmp_path / "moved")
    moved = mnistgen.evaluate(**evaluate)
    assert moved["verifier_note"] == shipped and "verifier" not in moved and "verifier" not in moved["samples"]
    changed = renamed(tmp_path / "moved", own, SORTED_WORDS)  # back where the file says, with other weights
    card = json.loads((changed / "model.json").read_text())
    del card["sha256"]
    (changed / "model.json").write_text(json.dumps(card))
    weights = bytearray((changed / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # the last tensor's last byte: another sha256, still a model
    (changed / "model.safetensors").write_bytes(bytes(weights))
    assert mnistgen.evaluate(**evaluate) == moved


def test_every_form_of_generated_output_is_labelled_by_its_class_names(tmp_path, mnist_dir, tiny_cvae):
    """A word-named model's "zero"s (label 9) read back as "zero" from every form generate writes:
    another model or judge reads them by name, and refuses them when it has no such class (graded
    as digit 9 they were all wrong). The HDF5 refusal named 'eight', a class the file does not hold."""
    named = renamed(tiny_cvae, tmp_path / "named", SORTED_WORDS)
    for out, extra in (("g", []), ("g.h5", []), ("g.npz", []), ("gi", ["--format", "idx"])):
        path = tmp_path / out
        argv = ["generate", "--model", str(named), "--class", "zero", "-n", "2", "-o", str(path), "-q", *extra]
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
        assert (path / "9").is_dir() if out == "g" else True  # folders keep the label index
        sources_ = [path, path / "train-images-idx3-ubyte.gz"] if out == "gi" else [path]
        for source in sources_:
            from mnistgen import sources

            assert sources.read([source], classes=SORTED_WORDS).labels.tolist() == [9, 9]
            assert sources.read([source], classes=WORDS).labels.tolist() == [0, 0]  # by name, not by number
            loaded = sources.load(source)
            assert loaded.classes == SORTED_WORDS and loaded.train.labels.tolist() == [9, 9]
            graded = runner.invoke(app, ["evaluate", "--images", str(source), "--data", str(mnist_dir), "-q"])
            assert graded.exit_code == 1, graded.output
            assert graded.stderr == (
                f"Error: {source} holds images of class 'zero', which is not a class of the judge 'judge' (classes: 0, "
                "1, 2, 3, 4, 5, 6, 7, 8, 9): pass --judge, a classifier trained on them (mnistgen train --model "
                "classifier --data DIR)\n"
            )
            encoded = runner.invoke(app, ["encode", str(source), "--model", str(tiny_cvae)])
            assert encoded.exit_code == 1, encoded.output
            assert encoded.stderr == (
                f"Error: {source} holds images of class 'zero', which is not a class of the model (classes: 0, 1, 2, "
                "3, 4, 5, 6, 7, 8, 9): pass --labels\n"
            )
    first = runner.invoke(app, ["encode", str(tmp_path / "g"), "--model", str(named)])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[1].split(",")[1] == "9"


def test_a_sharded_folders_manifests_name_its_classes(tmp_path, tiny_cvae):
    from mnistgen import sources

    named = renamed(tiny_cvae, tmp_path / "named", SORTED_WORDS)
    out = tmp_path / "g"
    for shard in ("0/2", "1/2"):  # two shards in one folder: a manifest each, no mnistgen.json
        argv = ["generate", "--model", str(named), "--class", "zero,one", "-n", "2", "--shard", shard, "-o", str(out)]
        result = runner.invoke(app, [*argv, "--seed", "1", "-q"])
        assert result.exit_code == 0, result.output
    loaded = sources.load(out)
    assert loaded.classes == SORTED_WORDS and sorted(set(loaded.train.labels.tolist())) == [4, 9]


def test_messages_name_what_the_command_takes(tmp_path, mnist_dir, dataset, tiny_cvae):
    words = folder(tmp_path / "w", dataset, dict(enumerate(WORDS)))
    result = runner.invoke(app, ["evaluate", "--images", str(words), "--data", str(mnist_dir)])
    assert result.exit_code == 1, result.output  # no model, no --labels: the judge, and --judge
    assert result.stderr == (
        f"Error: folder {words / 'eight'} is not a class of the judge 'judge' (classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9): "
        "rename it to one of them, or pass --judge, a classifier trained on them (mnistgen train --model classifier "
        "--data DIR)\n"
    )
    other = tmp_path / "xy.npz"
    np.savez(other, x=dataset.train.images[:4], y=dataset.train.labels[:4])
    result = runner.invoke(app, ["evaluate", "--images", str(other), "--data", str(mnist_dir)])
    assert result.exit_code == 1, result.output  # read before the judge grades the test set: no stage line
    assert result.stderr == (
        f"Error: {other} holds 'x', 'y', none of the arrays mnistgen reads: save yours as images uint8 (N, 28, 28) "
        "and labels (N,), as generate writes, or as x_train (N, 28, 28) and y_train (N,), with x_test and y_test as "
        "a test split, as Keras's mnist.npz\n"
    )
    named = renamed(tiny_cvae, tmp_path / "named", SORTED_WORDS)
    out = tmp_path / "g.h5"
    result = runner.invoke(app, ["generate", "--model", str(named), "--digit", "3,9", "-n", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "note: --digit gives label indices: in model tiny-cvae, label 3 is 'nine', 9 is 'zero'; --class chooses by "
        "name\n"
    )
    digits = ["generate", "--model", str(tiny_cvae), "--digit", "3", "-n", "1", "-o", str(tmp_path / "d.h5")]
    result = runner.invoke(app, digits)
    assert result.exit_code == 0, result.output  # digits named by their own numbers: no note
    assert "note: --digit" not in result.stderr


def test_a_train_error_is_one_line_with_the_progress_bar_on(tmp_path, dataset):
    one = folder(tmp_path / "one", dataset, {0: "a"})
    argv = ["train", "--model", "cvae", "--data", str(one), "--epochs", "1", "--processes", "1"]
    result = runner.invoke(app, [*argv, "--out", str(tmp_path / "run")])  # not --quiet
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {one} has one class folder (a/): a cvae or the classifier needs at least 2 classes; add another, or "
        "train --model vae\n"
    )
