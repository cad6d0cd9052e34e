"""The Python API and the models / cache commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import mnistgen
from mnistgen.cli import app

runner = CliRunner()


def test_import_is_cheap():
    code = "import sys, mnistgen; print('paddle' in sys.modules, 'numpy' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False False"
    )


def test_generate_matches_the_cli_pixels(tmp_path, tiny_cvae):
    from PIL import Image

    model = mnistgen.load(str(tiny_cvae), device="cpu")
    images, labels, z = model.generate(digit=[2, 6], count=5, seed=3)
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [2] * 5 + [6] * 5 and z.shape == (10, 2) and z.dtype == np.float32
    runner.invoke(
        app,
        ["generate", "-d", "6", "-n", "5", "--seed", "3", "--model", str(tiny_cvae), "-o", str(tmp_path / "o"), "-q"],
    )
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "6" / "00004.png")), images[-1])
    assert np.array_equal(model.decode(z[5:], labels=6), images[5:])


@pytest.mark.parametrize(
    "keyword, message",
    [
        ({"temperature": -5}, "temperature=-5: --temperature takes a number from 0 to 10"),
        ({"sharpen": 0.5}, "sharpen=0.5: --sharpen takes a number from 1 to 10"),
        ({"min_confidence": 2}, "min_confidence=2: --min-confidence takes a number from 0 to 1"),
        ({"truncation": "wide"}, "truncation='wide': --truncation takes a number from 0 to 100"),
    ],
)
def test_sampling_keywords_have_the_options_ranges(tiny_cvae, keyword, message):
    model = mnistgen.load(str(tiny_cvae), device="cpu")
    with pytest.raises(mnistgen.MnistgenError) as caught:
        model.generate(digit=2, count=1, **keyword)
    assert str(caught.value) == message


def test_interpolate_and_encode(tiny_cvae, tiny_vae, dataset):
    cvae = mnistgen.load(str(tiny_cvae))
    frames = cvae.interpolate(digits=[1, 7], steps=4)
    assert frames.shape == (5, 28, 28) and frames.dtype == np.uint8
    means, stds = cvae.encode(dataset.test.images[:12], dataset.test.labels[:12])
    assert means.shape == stds.shape == (12, 2) and (stds > 0).all()
    vae = mnistgen.load(str(tiny_vae))
    with pytest.raises(mnistgen.MnistgenError, match="unconditional VAE and has no labels"):
        vae.generate(digit=3, count=2)
    assert vae.generate(count=3)[1].tolist() == [-1, -1, -1]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, x, y, z: m.encode(x / 255.0, y), "images holds the pixel value "),
        (lambda m, x, y, z: m.reconstruct(x.astype(np.int32) + 256, y), "images holds the pixel value "),
        (
            lambda m, x, y, z: m.encode(x[:, :27], y),
            "images have shape (4, 27, 28): pass (N, 28, 28), (N, 1, 28, 28), (N, 784) or one (28, 28)",
        ),
        (lambda m, x, y, z: m.decode(z, labels=-1), "label -1: model tiny-cvae knows labels 0-9 only"),
        (lambda m, x, y, z: m.decode(z, labels=12), "label 12: model tiny-cvae knows labels 0-9 only"),
        (lambda m, x, y, z: m.decode(z, labels=[3, 8]), "--labels has 2 values for 4 images: give one for all"),
        (lambda m, x, y, z: m.encode(x, [3.5] * 4), "labels must be whole numbers (label indices), got float64"),
        (
            lambda m, x, y, z: m.decode(np.zeros((4, 16)), 3),
            "z has shape (4, 16): model tiny-cvae decodes (N, 2) latents",
        ),
        (lambda m, x, y, z: m.decode(z), "model tiny-cvae is conditional: pass labels"),
    ],
)
def test_arrays_given_to_the_model_are_checked_not_cast(tiny_cvae, call, message):
    """A [0, 1] float cast to uint8 is black, np.eye takes label -1 as the last class, and a reshape
    turns four 16-d latents into 32 images: each is refused in one line instead."""
    model = mnistgen.load(str(tiny_cvae), device="cpu")
    images, labels, z = model.generate(digit=3, count=4, seed=0)
    with pytest.raises(mnistgen.MnistgenError) as caught:
        call(model, images, labels, z)
    assert str(caught.value).startswith(message)
    assert model.encode(images.astype(np.float32)[:, None], 3)[0].shape == (4, 2)  # whole numbers of any dtype
    assert model.encode(images[0], 3)[0].shape == (1, 2) and model.encode(images.reshape(4, 784), 3)[0].shape == (4, 2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.generate(digit=[], count=1), "digit []: give a label index (0 or more) or a list of them"),
        (lambda m: m.generate(digit=7.9, count=1), "digit 7.9: give a label index (0 or more) or a list of them"),
        (
            lambda m: m.generate(digit="seven", count=1),
            "digit 'seven': digit= takes label indices (0 or more); give class names as classes='seven'",
        ),
        (lambda m: m.generate(digit=3, count=2.5), "count must be a whole number of images per class, 1 to 10,000,000"),
        (lambda m: m.generate(digit=3, seed=2**64), "seed must be a whole number from 0 to 4294967295"),
        (lambda m: m.interpolate(digits=[3, 8], method="slerpp"), "method 'slerpp': use one of lerp, slerp"),
        (lambda m: m.interpolate(digits=[3, 8], steps=0), "steps=0: frames per segment, a whole number of at least 1"),
        (lambda m: m.grid(0), "n=0: a grid is n x n images, n a whole number of at least 2"),
        (lambda m: m.grid(10**6), "a grid of 1000000 x 1000000 would hold "),
        (lambda m: m.evaluate(count=0), "count must be a whole number of images per class, 1 to 10,000,000: got 0"),
    ],
)
def test_generate_and_interpolate_check_their_arguments(tiny_cvae, call, message):
    """As SyntheticMNIST and the options do: numpy's errors, silent coercion of 7.9 to 7, seeds the CLI
    cannot repeat, or a misspelt method walked straight, before."""
    model = mnistgen.load(str(tiny_cvae), device="cpu")
    with pytest.raises(mnistgen.MnistgenError) as caught:
        call(model)
    assert str(caught.value).startswith(message)
    assert model.generate(digit=[7, 3, 7], count=1)[1].tolist() == [3, 7]  # as --digit 7,3,7: sorted, once each
    assert model.generate(classes=["7", "3"], count=1)[1].tolist() == [3, 7]  # the card's names, as --class


def test_what_the_python_section_hands_out_prints_in_a_line_or_two(tmp_path, mnist_dir):
    """print(model.sampling()) printed the mixture prior's arrays (64,000 characters for cvae), a
    planned Job its model card (321,000), read images their pixels: each now says what it is."""
    from mnistgen import generate as jobs

    model = mnistgen.load("cvae", device="cpu")
    spec = model.sampling()
    assert repr(spec) == (
        "Sampling(prior=mixture(10 labels, up to 10 components), temperature=1.1, sharpen=3, min_confidence=0.9, "
        "verifier=classifier-c,classifier-d, precision=auto)"
    )
    assert repr(model.sampling(prior="fitted", truncation=2.5, min_confidence=0, precision="fp32")) == (
        "Sampling(prior=fitted(10 labels, truncation=2.5), temperature=1.1, sharpen=3, min_confidence=0, "
        "precision=fp32)"
    )
    assert repr(mnistgen.load("vae-2d").sampling()) == (
        "Sampling(prior=standard, temperature=1, sharpen=1, min_confidence=0, precision=auto)"
    )
    assert spec == model.sampling() and spec != model.sampling(temperature=1.0)  # compared array by array
    assert spec.prior != model.sampling(prior="fitted").prior and hash(spec.prior) == hash(model.sampling().prior)
    assert repr(model) == "<mnistgen.Model cvae: cvae, latent 16, cpu>"
    sha = model.sha256[:12]
    assert repr(model.weights) == f"<mnistgen Weights cvae: cvae, {model.weights.path}, sha256 {sha}>"
    job = jobs.plan_job(model.weights, [3], 2, tmp_path / "s.h5", 0, sampling=spec)
    assert repr(job).startswith(f"Job(weights=<mnistgen Weights cvae: cvae, {model.weights.path}, sha256 {sha}>, ")
    assert f"sampling={spec!r}" in repr(job) and len(repr(job)) < 800
    read = model.read(mnist_dir / "t10k-images-idx3-ubyte.gz", limit=30)
    assert repr(read) == (
        f"<mnistgen Images: 30 images, labelled, classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, first "
        f"{mnist_dir / 't10k-images-idx3-ubyte.gz'}[0]>"
    )


def test_choices_take_none_as_auto_and_name_their_values(tiny_cvae):
    model = mnistgen.load(str(tiny_cvae), device="cpu")
    assert np.array_equal(
        model.generate(digit=2, count=2, seed=1, prior=None, precision=None)[0],
        model.generate(digit=2, count=2, seed=1)[0],
    )
    with pytest.raises(mnistgen.MnistgenError, match=r"^prior='bogus': use one of auto, standard, fitted, mixture$"):
        model.generate(digit=2, count=1, prior="bogus")
    with pytest.raises(mnistgen.MnistgenError, match=r"^precision='fp16': use one of auto, fp32, bf16$"):
        mnistgen.SyntheticMNIST(model=str(tiny_cvae), count=1, precision="fp16")


def test_the_sampling_keywords_and_options_are_the_requests_fields():
    """SamplingRequest is the one list of sampling settings and their defaults: the API's keywords,
    the public signatures (kept for their documentation) and the CLI's options must agree with it."""
    import dataclasses
    import inspect

    import typer

    from mnistgen import api
    from mnistgen.config import SETTING_RANGES, SamplingRequest, option_name

    fields = dataclasses.fields(SamplingRequest)
    with pytest.raises(TypeError, match="^SamplingRequest.among: the caller takes no sharpen, truncation, "):
        SamplingRequest.among({"temperature": 1.0})  # a renamed parameter is not taken for its default
    others = tuple(f.name for f in fields if f.name != "temperature")
    assert SamplingRequest.among({"temperature": 0.5}, absent=others) == SamplingRequest(temperature=0.5)
    assert api.SAMPLING_KEYWORDS == tuple(f.name for f in fields)
    for function in (api.Model.generate, mnistgen.SyntheticMNIST.__init__):
        parameters = inspect.signature(function).parameters
        assert {f.name: f.default for f in fields} == {f.name: parameters[f.name].default for f in fields}
    commands = typer.main.get_command(app).commands
    for command, missing in (("generate", set()), ("evaluate", {"precision"})):
        options = {p.name: p.opts for p in commands[command].params}
        assert {f.name for f in fields} - set(options) == missing
        for f in fields:
            assert f.name in missing or option_name(f.name) in options[f.name]
    assert all(option_name(key) == setting.option for key, setting in SETTING_RANGES.items())
    assert SamplingRequest(prior=None, precision="bf16").prior == "auto" and not SamplingRequest().shaping()
    asked = SamplingRequest(prior="fitted", classifier="classifier", temperature=2.0).shaping()
    assert asked == {"temperature": 2.0, "prior": "fitted"}  # in the order evaluate --images names them
    with pytest.raises(mnistgen.MnistgenError, match=r"^prior='uniform': use one of auto, standard, fitted, mixture$"):
        SamplingRequest(prior="uniform")


def test_a_job_runs_only_on_the_model_it_was_planned_for(tmp_path, tiny_cvae, tiny_vae):
    from mnistgen import generate as jobs

    cvae, vae = mnistgen.load(str(tiny_cvae), device="cpu"), mnistgen.load(str(tiny_vae), device="cpu")
    job = jobs.plan_job(vae.weights, [-1], 3, tmp_path / "w.npz", 0)
    with pytest.raises(mnistgen.MnistgenError) as caught:
        cvae.write(job)
    assert str(caught.value) == (
        "the job was planned for model tiny-vae, not tiny-cvae: its files would record the wrong model; plan it with "
        "tiny-cvae's weights (Model.weights)"
    )
    assert not (tmp_path / "w.npz").exists()
    assert vae.write(job)["model"] == "tiny-vae" and (tmp_path / "w.npz").exists()


def test_models_lists_user_weights(tmp_path, monkeypatch, tiny_cvae):
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_cvae / f"model{suffix}", tmp_path / f"mine{suffix}")
    monkeypatch.setenv("MNISTGEN_WEIGHTS", str(tmp_path))
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["mine"]["kind"] == "cvae" and rows["mine"]["epochs"] == 2 and len(rows["mine"]["sha256"]) == 64
    shown = runner.invoke(app, ["models", "show", "mine"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["config"]["channels"] == 8
    assert (
        runner.invoke(
            app, ["generate", "--model", "mine", "-d", "1", "-n", "2", "-o", str(tmp_path / "o"), "-q"]
        ).exit_code
        == 0
    )


def test_run_directories_are_found_by_their_names(tmp_path, monkeypatch, tiny_cvae):
    """$MNISTGEN_WEIGHTS may name a run directory or a folder of them: each run is its directory's
    name, and its own files (model, classifier: the companion) never shadow the shipped ones."""
    from mnistgen import checkpoint

    runs = tmp_path / "runs"
    shutil.copytree(tiny_cvae, runs / "digits")
    shutil.copy(checkpoint.resolve("classifier"), runs / "digits" / "classifier.safetensors")  # a companion
    shipped = checkpoint.resolve("classifier")
    shutil.copytree(tiny_cvae, runs / "cvae")  # as the README's recipes name their runs
    cvae = checkpoint.resolve("cvae")
    for where in (runs, runs / "digits"):
        monkeypatch.setenv("MNISTGEN_WEIGHTS", str(where))
        names = checkpoint.available_names()
        assert "digits" in names and "model" not in names and "train_state" not in names
        assert checkpoint.resolve("digits") == runs / "digits" / "model.safetensors"
        assert checkpoint.resolve("classifier") == shipped and checkpoint.resolve("cvae") == cvae  # not hidden
    monkeypatch.chdir(runs / "digits")
    monkeypatch.setenv("MNISTGEN_WEIGHTS", ".")
    assert "digits" in checkpoint.available_names() and "" not in checkpoint.available_names()
    mine = tmp_path / "mine"  # a folder of weights that holds a model.safetensors is no run: all its files count
    mine.mkdir()
    for stem in ("model", "other"):
        for suffix in (".safetensors", ".json"):
            shutil.copy(tiny_cvae / f"model{suffix}", mine / f"{stem}{suffix}")
    monkeypatch.setenv("MNISTGEN_WEIGHTS", str(mine))
    assert {"model", "other"} <= set(checkpoint.available_names())


def test_cache_show_and_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTGEN_DATA", str(tmp_path / "c"))
    (tmp_path / "c" / "mnist").mkdir(parents=True)
    (tmp_path / "c" / "mnist" / "x.gz").write_bytes(b"12345")
    shown = json.loads(runner.invoke(app, ["cache"]).stdout)
    assert shown == {"cache": str(tmp_path / "c"), "bytes": 5, "entries": {"mnist": 5}}
    cleared = json.loads(runner.invoke(app, ["cache", "clear"]).stdout)
    assert cleared["bytes"] == 5 and not (tmp_path / "c").exists()


def test_thread_count_follows_the_scheduler_not_paddle():
    code = (
        "from mnistgen.runtime import import_paddle, usable_cpus; import os; import_paddle(); "
        "print(usable_cpus(), os.environ.get('OMP_NUM_THREADS'))"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "MNISTGEN_THREADS")
    }
    mine = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert int(mine[0]) == len(os.sched_getaffinity(0))  # Paddle's own OMP_NUM_THREADS=1 does not count
    slurm = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "SLURM_CPUS_PER_TASK": "1"},
        check=True,
    )
    assert slurm.stdout.split()[0] == "1"


def test_evaluate_in_python_gives_what_the_command_prints(tiny_cvae, tiny_classifier, mnist_dir):
    args = ["--model", str(tiny_cvae), "--judge", str(tiny_classifier), "--data", str(mnist_dir)]
    result = runner.invoke(app, ["evaluate", *args, "--count", "10", "--seed", "4", "--temperature", "0.8", "-q"])
    assert result.exit_code == 0, result.output
    report = mnistgen.evaluate(
        str(tiny_cvae), judge=str(tiny_classifier), data_dir=mnist_dir, count=10, seed=4, temperature=0.8
    )
    assert report == json.loads(result.stdout)
    model = mnistgen.load(str(tiny_cvae))
    spec = model.sampling(temperature=0.8)
    assert model.evaluate(10, 4, mnist_dir, str(tiny_classifier), sampling=spec) == report
    assert report["judge"] == "tiny-classifier" and report["verifier"] == "classifier"  # never the same
    assert report["temperature"] == 0.8 and report["samples"]["images"] == 100


def test_evaluate_in_python_scores_one_path_of_images(tmp_path, tiny_cvae, tiny_classifier, mnist_dir):
    synth = tmp_path / "s.h5"
    made = runner.invoke(app, ["generate", "--model", str(tiny_cvae), "-n", "3", "-o", str(synth), "-q", "--seed", "1"])
    assert made.exit_code == 0, made.output
    args = ["--judge", str(tiny_classifier), "--data", str(mnist_dir)]
    result = runner.invoke(app, ["evaluate", "--images", str(synth), *args, "-q"])
    assert result.exit_code == 0, result.output
    report = mnistgen.evaluate(images=str(synth), judge=str(tiny_classifier), data_dir=mnist_dir)  # not its characters
    assert report == json.loads(result.stdout) and report["samples"]["images"] == 30
    assert mnistgen.evaluate(images=[synth], judge=str(tiny_classifier), data_dir=mnist_dir) == report


def test_the_summary_and_the_file_record_the_same_settings(tmp_path, tiny_cvae):
    import h5py

    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_cvae),
            "-d",
            "1",
            "-n",
            "3",
            "-o",
            str(tmp_path / "s.h5"),
            "-q",
            "--seed",
            "2",
            "--sharpen",
            "2",
            "--truncation",
            "2.5",
            "--precision",
            "fp32",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with h5py.File(tmp_path / "s.h5") as f:
        attrs = {k: (json.loads(v) if k in ("labels", "classes") else v) for k, v in f.attrs.items()}
    assert {k: summary[k] for k in attrs} == attrs  # one source: Job.attrs
    assert attrs["sharpen"] == 2.0 and attrs["truncation"] == 2.5 and attrs["precision"] == "fp32"


def test_sampling_is_resolved_once_from_the_card(tiny_cvae):
    from mnistgen import checkpoint, sampling, verifiers
    from mnistgen.config import SamplingRequest

    weights = checkpoint.inspect("cvae")
    card = weights.card["sampling"]
    spec = sampling.resolve_sampling(weights)
    assert (spec.prior.kind, spec.temperature, spec.sharpen) == (card["prior"], card["temperature"], card["sharpen"])
    assert spec.min_confidence == card["min_confidence"]
    assert verifiers.verifier_name(spec.classifier) == "classifier-c,classifier-d"  # the card's ensemble
    cooler = sampling.resolve_sampling(weights, SamplingRequest(temperature=0.5, min_confidence=0))
    assert cooler.attrs()["temperature"] == 0.5
    assert not sampling.resolve_sampling(weights, sampling.UNVERIFIED).verified
    plain = sampling.resolve_sampling(checkpoint.inspect(str(tiny_cvae)))  # a card without advice: the defaults
    assert (plain.prior.kind, plain.temperature, plain.sharpen, plain.verified) == ("standard", 1.0, 1.0, False)


def test_fit_trains_what_the_cli_trains(tmp_path, mnist_dir):
    run = tmp_path / "api"
    plans = []

    from mnistgen.train import TrainCallback

    class Plans(TrainCallback):
        def on_plan(self, config, options, images):
            plans.append((config.kind, options.recipe, images))

    metrics = mnistgen.fit(mnist_dir, run, "cvae", limit=200, epochs=1, channels=8, seed=4, companion=False,
                           callback=Plans())  # fmt: skip
    assert metrics["epoch"] == 1 and "test_loss" in metrics
    assert plans == [("cvae", "small", 200)]  # the images given (train holds out its share): recipe by size
    card = mnistgen.load(str(run)).card
    assert card["training"]["limit"] == 200 and card["training"]["seed"] == 4 and card["config"]["channels"] == 8
    result = runner.invoke(
        app, ["train", "--model", "cvae", "--data", str(mnist_dir), "--limit", "200", "--epochs", "1",
              "--channels", "8", "--seed", "4", "--no-classifier", "--processes", "1", "--out", str(tmp_path / "cli"),
              "--quiet"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert mnistgen.load(str(tmp_path / "cli")).sha256 == mnistgen.load(str(run)).sha256  # the same weights


@pytest.mark.parametrize(
    "keyword, message",
    [
        ({"epochs": 0}, "epochs=0: --epochs takes a whole number from 1 to 10,000"),
        ({"lr": -1.0}, "lr=-1.0: --lr takes a number from 1e-09 to 1"),
        ({"batch_size": 0}, "batch_size=0: --batch-size takes a whole number from 1 to 65,536"),
        ({"limit": 0}, "limit=0: --limit takes a whole number from 1 to 4,294,967,295"),
        ({"seed": -1}, "seed=-1: --seed takes a whole number from 0 to 4,294,967,295"),
        ({"epochs": 2.5}, "epochs=2.5: --epochs takes a whole number from 1 to 10,000"),
    ],
)
def test_fit_keywords_have_the_options_ranges(tmp_path, mnist_dir, keyword, message):
    """What Typer refuses on the command line, fit refuses too, before anything is read or written
    (epochs=0 trained the recipe's 400 epochs, lr=-1 diverged, batch_size=0 divided by zero)."""
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.fit(mnist_dir, tmp_path / "run", **keyword)
    assert str(caught.value) == message
    assert not (tmp_path / "run").exists()


def test_fit_a_classifier_and_refuse_a_missing_folder(tmp_path, mnist_dir, callers_device):
    epochs = []
    metrics = mnistgen.fit(mnist_dir, tmp_path / "clf", "classifier", limit=300, epochs=1, channels=8,
                           callback=epochs.append, device="cpu")  # fmt: skip
    assert len(epochs) == 1 and 0 < metrics["test_accuracy"] <= 1
    assert callers_device["device"] == "gpu:1" and "cpu" in callers_device["set"]  # trained there, given back
    from mnistgen import checkpoint

    assert checkpoint.inspect(str(tmp_path / "clf")).is_classifier
    with pytest.raises(mnistgen.MnistgenError, match="^cannot train 'gan': train one of vae, cvae, classifier$"):
        mnistgen.fit(mnist_dir, tmp_path / "gan", "gan")
    with pytest.raises(mnistgen.MnistgenError, match="nowhere"):
        mnistgen.fit(tmp_path / "nowhere", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_model_sets_paddles_device_only_while_it_runs(tiny_cvae, callers_device):
    """Paddle's device is the whole process's: a GPU script that loads a model on the CPU must keep
    its own tensors on its GPU. Each call runs on the model's device and gives the caller's back."""
    model = mnistgen.load(str(tiny_cvae), device="cpu")
    assert callers_device["device"] == "gpu:1"
    images, labels, z = model.generate(digit=1, count=3)
    model.encode(images, labels)
    assert np.array_equal(model.decode(z, labels), images)
    model.interpolate(digits=[1, 2], steps=2)
    assert callers_device["device"] == "gpu:1"
    assert set(callers_device["set"]) == {"cpu", "gpu:1"}  # the model's while a call ran, the caller's after it


def test_the_callers_device_comes_back_after_an_error_too(callers_device):
    from mnistgen import runtime

    with pytest.raises(mnistgen.MnistgenError, match="^stopped$"):
        with runtime.on_device("cpu"):
            assert callers_device["device"] == "cpu"
            raise mnistgen.MnistgenError("stopped")
    assert callers_device["device"] == "gpu:1"


def test_a_gpu_runs_with_deterministic_cudnn_and_no_exhaustive_search():
    """The flags mnistgen sets for a device: on a GPU, cuDNN's deterministic algorithms (same seed, same
    pixels) and no exhaustive search, which Paddle's cuDNN convolutions refuse beside them; none on the CPU."""
    from mnistgen import runtime

    wanted = {"FLAGS_cudnn_deterministic": True, "FLAGS_cudnn_exhaustive_search": False}
    assert runtime.device_flags("gpu:1") == wanted and runtime.device_flags("gpu") == wanted
    assert runtime.device_flags("cpu") == {}


def test_a_gpu_decodes_with_cudnn_deterministic_and_gives_the_flag_back(tiny_cvae):
    from mnistgen import runtime

    paddle = runtime.import_paddle()
    if runtime.gpu_problem(paddle):
        pytest.skip(f"no usable GPU: {runtime.gpu_problem(paddle)}")
    flag, exhaustive = runtime.DETERMINISTIC_FLAG, runtime.EXHAUSTIVE_FLAG
    paddle.set_flags({flag: False, exhaustive: True})  # a user's FLAGS_cudnn_exhaustive_search=1
    with runtime.device_kept():
        assert runtime.select_device("gpu").startswith("gpu:")
        assert paddle.get_flags([flag, exhaustive]) == {flag: True, exhaustive: False}
    assert paddle.get_flags([flag, exhaustive]) == {flag: False, exhaustive: True}
    model = mnistgen.load(str(tiny_cvae), device="gpu")
    first, again = (model.generate(digit=1, count=3, seed=5)[0] for _ in range(2))
    assert np.array_equal(first, again) and paddle.get_flags([flag, exhaustive]) == {flag: False, exhaustive: True}
    paddle.set_flags({exhaustive: False})


def test_evaluating_images_gives_the_callers_device_back(tiny_judge, mnist_dir, callers_device):
    images = next(mnist_dir.glob("t10k-images*"))
    report = mnistgen.evaluate(images=images, judge=str(tiny_judge), data_dir=mnist_dir, device="cpu")
    assert report["samples"]["images"] > 0 and callers_device["device"] == "gpu:1"


def test_the_python_example_runs(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "python_api.py"
    done = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(200, 28, 28) uint8 [  0   0   0 100   0   0   0 100]" in done.stdout


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"steps": 0}, "steps=0: --steps takes a whole number from 1 to 100,000"),
        ({"limit": -3}, "limit=-3: --limit takes a whole number from 1 to 4,294,967,295"),
        ({"seeds": 0}, "seeds=0: give a list of classifier seeds, e.g. seeds=(0, 1)"),
        ({"seeds": []}, "seeds=[]: give a list of classifier seeds, e.g. seeds=(0, 1)"),
        ({"seeds": [0, -1]}, "seed must be a whole number from 0 to 4294967295: got -1"),
    ],
)
def test_evaluate_checks_its_keywords_before_any_work(tmp_path, tiny_cvae, keywords, message):
    """steps=0 reported two untrained classifiers as "no gain"; limit=-3 dropped images; seeds=0 was a TypeError."""
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.evaluate(str(tiny_cvae), augment=tmp_path / "absent", **keywords)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"limit": 5}, "limit chooses images of the augment set: drop it, or pass augment"),
        ({"images": "x.h5", "temperature": 2, "prior": "auto"}, "temperature shape a model's samples; images are "
         "scored as they are"),
        ({"images": "x.h5", "prior": "auto", "precision": None}, "unknown model 'nope'"),  # defaults: passed
    ],
)  # fmt: skip
def test_evaluate_refuses_what_it_would_not_read_as_the_command_does(keywords, message):
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.evaluate(judge="nope", **keywords)
    assert str(caught.value).startswith(message)


def test_misspelt_keywords_are_named_with_the_ones_there_are(tmp_path, tiny_cvae):
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.fit(tmp_path / "absent", tmp_path / "run", epochz=1)
    assert str(caught.value).startswith("fit(model='cvae') takes no keyword epochz: use one of batch_size, beta1,")
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.fit(tmp_path / "absent", tmp_path / "run", model="classifier", latent=3)
    assert str(caught.value).startswith("fit(model='classifier') takes no keyword latent: use one of arch, augment,")
    with pytest.raises(mnistgen.MnistgenError, match="^sampling takes no keyword temprature: "):
        mnistgen.load(str(tiny_cvae)).sampling(temprature=0.8)
    assert not (tmp_path / "run").exists()


def test_one_path_is_a_path_not_its_characters(tmp_path, tiny_cvae, dataset):
    from PIL import Image

    picture = tmp_path / "a.png"
    Image.fromarray(dataset.test.images[0]).save(picture)
    model = mnistgen.load(str(tiny_cvae))
    found = model.read(str(picture), labels=[3])
    assert found.images.shape == (1, 28, 28) and found.labels.tolist() == [3]
    second = tmp_path / "b.png"
    Image.fromarray(dataset.test.images[1]).save(second)
    frames = model.interpolate(images=[str(picture), str(second)], labels=[3, 3], steps=2)
    assert frames.shape == (3, 28, 28)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"bounds": (-1, 1, -1, 1), "sigma": 2}, "give bounds or sigma, not both"),  # keywords, as digits or classes
        (
            {"bounds": (-1, 1)},
            "--bounds (-1, 1): give four numbers x1,x2,y1,y2 with x1 != x2 and y1 != y2, e.g. -3,3,-3,3",
        ),
        (
            {"bounds": (1, 1, 0, 2)},
            "--bounds (1, 1, 0, 2): give four numbers x1,x2,y1,y2 with x1 != x2 and y1 != y2, e.g. -3,3,-3,3",
        ),
        ({"sigma": 0}, "--sigma 0: give a positive number of prior standard deviations, e.g. 3"),
    ],
)
def test_a_grid_checks_its_range(tiny_cvae, keywords, message):
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.load(str(tiny_cvae)).grid(3, digit=1, **keywords)
    assert str(caught.value) == message


def test_points_are_an_array_of_at_least_two(tiny_cvae):
    model = mnistgen.load(str(tiny_cvae))
    assert model.interpolate(points=[[-1, 0], [1, 0]], digit=1, steps=2).shape == (3, 28, 28)
    for points in ("-2,0;2,0", [[0, 0]]):
        with pytest.raises(mnistgen.MnistgenError) as caught:
            model.interpolate(points=points, digit=1, steps=2)
        assert str(caught.value) == (
            f"points {points!r}: pass at least two latent points as an array (K, d) of finite numbers, e.g. "
            '[[-2, 0], [2, 0]] (--points "-2,0;2,0")'
        )


def test_a_planned_job_samples_as_the_card_says_and_decode_wants_finite_latents(tmp_path, tiny_cvae):
    from mnistgen import generate

    model = mnistgen.load(str(tiny_cvae))
    job = generate.plan_job(model.weights, [1], 5, tmp_path / "out.npz", seed=0)
    assert job.sampling == model.sampling()  # what `mnistgen generate` would use, not an unverified default
    with pytest.raises(mnistgen.MnistgenError, match="^z holds NaN or infinite values: decode finite latents$"):
        model.decode(np.full((2, model.config.latent), np.nan), labels=1)


def test_dir_lists_the_lazy_names():
    assert {"load", "Model", "SyntheticMNIST", "BlockShuffle", "evaluate", "fit"} <= set(dir(mnistgen))


def test_keywords_set_by_the_recipe_or_named_elsewhere_are_refused(tmp_path, tiny_cvae):
    with pytest.raises(mnistgen.MnistgenError, match="^fit\\(model='cvae'\\) takes no keyword max_epochs: "):
        mnistgen.fit(tmp_path / "absent", tmp_path / "run", max_epochs=0)  # trained nothing and returned {}
    with pytest.raises(mnistgen.MnistgenError) as caught:
        mnistgen.evaluate(str(tiny_cvae), step=3)
    assert str(caught.value).startswith("evaluate takes no keyword step: use one of augment, classifier, count,")
    assert "steps" in str(caught.value) and "temperature" in str(caught.value)
    for dims in ("01", (0, 1, 2), 0):
        with pytest.raises(mnistgen.MnistgenError, match=r"^dims=.*: give two latent dimensions, e.g. \(0, 1\)$"):
            mnistgen.load(str(tiny_cvae)).grid(3, dims=dims)


def test_an_image_encodes_to_the_same_mean_alone_or_among_others(mnist_dir):
    """Paddle's CPU kernels round odd batch sizes differently: an image encoded alone, or as the last
    of 1,001, got means 2e-6 away from the same image among 1,000 (a CSV row changed in its 7th digit)."""
    from mnistgen import sources

    images = sources.load(mnist_dir).test.images[:64]
    labels = np.arange(64) % 10
    model = mnistgen.load("cvae-2d", device="cpu")
    means, stds = model.encode(images, labels)
    for n in (1, 3, 7, 33):
        alone_means, alone_stds = model.encode(images[:n], labels[:n])
        assert np.array_equal(alone_means, means[:n]) and np.array_equal(alone_stds, stds[:n]), n
    assert np.array_equal(model.encode(images[5], 5)[0], means[5:6])


def test_interpolate_walks_between_arrays_as_between_their_files(tmp_path, tiny_cvae, dataset):
    """interpolate(images=array) was a TypeError: only files could be walked between from Python."""
    from PIL import Image

    model = mnistgen.load(str(tiny_cvae))
    pictures = dataset.test.images[:2]
    paths = []
    for i, picture in enumerate(pictures):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(picture).save(paths[-1])
    from_files = model.interpolate(images=paths, labels=[3, 8], steps=4)
    assert np.array_equal(model.interpolate(images=pictures, labels=[3, 8], steps=4), from_files)
    assert np.array_equal(model.interpolate(images=list(pictures), labels=[3, 8], steps=4), from_files)
    means, _ = model.encode(pictures, [3, 8])
    assert np.array_equal(from_files[[0, -1]], model.decode(means, [3, 8]))  # the walk ends on the encodings
    read = model.read(paths)  # what read gave, labelled by the labels given (they were ignored)
    assert np.array_equal(model.interpolate(images=read, labels=[3, 8], steps=4), from_files)
    with pytest.raises(mnistgen.MnistgenError) as caught:
        model.interpolate(images=pictures / 255.0, digit=3)
    assert str(caught.value).startswith("images holds the pixel value ")
    with pytest.raises(mnistgen.MnistgenError) as caught:
        model.interpolate(images=[paths[0], pictures[1]], labels=[3, 8])
    assert str(caught.value) == (
        "images must be one array of pixels, (N, 28, 28) or alike, or paths (a path or a list of paths), not a mixture"
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.interpolate(digits=[3, 8], seed=-1), "seed must be a whole number from 0 to 4294967295: got -1"),
        (lambda m: m.interpolate(digits=[3]), "--digits needs at least two digits to walk between, e.g. 3,8"),
        (
            lambda m: m.interpolate(digits=[3, 8], steps=100_000),
            "a walk of 100,001 frames would hold 228.9 MiB in memory, more than the 1.0 MiB an output may use "
            "(MNISTGEN_MAX_MEMORY): use fewer steps, or fewer stops to walk through",
        ),
        (
            lambda m: m.interpolate(points=np.zeros((1000, 2)), digit=1, steps=1000),
            "a walk of 999,001 frames would hold 2.2 GiB in memory, more than the 1.0 MiB an output may use "
            "(MNISTGEN_MAX_MEMORY): use fewer steps, or fewer stops to walk through",
        ),
        (lambda m: m.grid(1), "n=1: a grid is n x n images, n a whole number of at least 2"),
    ],
)
def test_interpolate_checks_what_the_cli_checks(tiny_cvae, monkeypatch, call, message):
    """steps had no bound in Python (steps=10**7 held gigabytes for minutes), seed=-1 was numpy's
    ValueError, one digit made a one-frame walk, and grid(1) drew its one image at the range's corner."""
    monkeypatch.setenv("MNISTGEN_MAX_MEMORY", "1M")
    with pytest.raises(mnistgen.MnistgenError) as caught:
        call(mnistgen.load(str(tiny_cvae)))
    assert str(caught.value) == message


def test_encode_and_reconstruct_read_paths_as_interpolate_does(tmp_path, tiny_cvae, dataset):
    """encode("folder/") failed with "images have shape ()": only interpolate read paths. A class
    folder labels its pictures; labels given replace them, by index or name."""
    from PIL import Image

    model = mnistgen.load(str(tiny_cvae))
    pictures, labels = dataset.test.images[:4], dataset.test.labels[:4]
    for i, (picture, label) in enumerate(zip(pictures, labels)):
        (tmp_path / "set" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(tmp_path / "set" / str(label) / f"{i}.png")
    found = model.read(tmp_path / "set")
    means, stds = model.encode(str(tmp_path / "set"))
    assert np.array_equal(means, model.encode(found.images, found.labels)[0]) and stds.shape == (4, 2)
    one = tmp_path / "set" / str(labels[0]) / "0.png"
    assert np.array_equal(model.encode(one, int(labels[0]))[0], model.encode(pictures[0], int(labels[0]))[0])
    assert model.reconstruct([one], int(labels[0])).shape == (1, 28, 28)
