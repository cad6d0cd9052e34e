"""What a careful new user meets walking the README and the --help pages: every page's example on
its own lines, train's defaults, metavars instead of Python types, label names wherever labels are
taken, misspelt keywords named, and the examples scripts that the README sends them to."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import mnistgen
from mnistgen.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TUTORIAL = ROOT / "examples" / "tutorial_figures.sh"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _commands(group=None, path=()):
    """(argv, click command) for the root and every command and subcommand."""
    group = group or typer.main.get_command(app)
    yield list(path), group
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name)) if hasattr(command, "commands") else [([*path, name], command)]


def _help(argv) -> str:
    result = runner.invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_page_shows_its_examples_each_on_its_own_line():
    pages = 0
    for argv, command in _commands():
        examples = [line.strip() for line in (command.help or "").splitlines() if line.strip().startswith("Example:")]
        assert examples, f"mnistgen {' '.join(argv)} has no example"
        lines = [line.strip() for line in _help(argv).splitlines()]
        for example in examples:  # whole, not wrapped, not run into the next
            assert example in lines, f"{example!r} is not a line of mnistgen {' '.join(argv)} --help"
        pages += 1
    assert pages >= 10  # the root, 7 commands, models show, cache clear
    root = [line.strip() for line in _help([]).splitlines()]
    assert "Example: mnistgen generate --digit 7 --count 1000 --out synth/" in root


def test_help_pages_name_values_not_python_types():
    for argv, _ in _commands():
        text = _help(argv)
        assert not re.search(r"<(str|int|float|bool|list\[[^>]*\])>", text), (argv, text)
        usage = text.splitlines()[0]
        assert "{" not in usage, usage
    assert "Usage: mnistgen encode [OPTIONS] SOURCES..." in _help(["encode"])
    assert "\n  SOURCES...  PNG files" in _help(["encode"])
    assert "Usage: mnistgen models show [OPTIONS] NAME|PATH" in _help(["models", "show"])
    assert "--model NAME|PATH" in _help(["generate"])
    result = runner.invoke(app, ["encode"])
    assert result.exit_code == 2 and "Missing argument 'SOURCES'." in result.output


def _option(command: str, name: str):
    return next(p for p in typer.main.get_command(app).commands[command].params if name in p.opts)


def test_train_help_gives_each_recipes_defaults_from_the_recipes():
    helps = {name: _option("train", name).help for name in ("--batch-size", "--beta1", "--lr", "--channels")}
    assert helps["--batch-size"].endswith("[default: the recipe's, 64 in every recipe].")
    assert helps["--beta1"].endswith("[default: the recipe's, 0.5 in every recipe].")
    assert helps["--lr"].endswith("[default: the recipe's, 0.001 in every recipe].")
    assert helps["--channels"].endswith("[default: the recipe's, 32 in every recipe].")
    assert _option("train", "--likelihood").help.endswith(
        "[default: the recipe's: gaussian (cvae-2d, vae-2d); bernoulli (cvae, small, medium, large, full)]."
    )
    assert _option("train", "--kl-warmup").help.endswith(
        "[default: the recipe's: 0 (cvae-2d, vae-2d); 2 (cvae, full); 10 (small, medium); 5 (large)]."
    )
    assert _option("train", "--lr-decay").help.endswith("[default: the recipe's, on in every recipe].")
    assert "`--lr-decay/--no-lr-decay`" in README.read_text(encoding="utf-8")


def test_imagefolder_suffixes_in_help_and_readme_are_the_readers():
    from mnistgen.sources import IMAGE_SUFFIXES

    readers = {suffix.lstrip(".") for suffix in IMAGE_SUFFIXES}
    for text in (_option("train", "--data").help, README.read_text(encoding="utf-8")):
        listed = re.search(r"DIR/<class>/\*\.([a-z]+(?:\|[a-z]+)+)", text).group(1)
        assert set(listed.split("|")) == readers, listed


def test_data_help_lists_the_forms_the_reader_names_in_its_refusals():
    """One table (config.INPUT_FORMS) behind train --data's help and sources.FORMS, in the same order."""
    from mnistgen import sources

    assert _option("train", "--data").help == (
        "A directory of MNIST's IDX files (.gz or not), an ImageFolder DIR/<class>/*.png|jpg|jpeg|bmp|gif|tif|tiff|"
        "webp (class names from the folders), a flat folder of pictures (--model vae only), an .h5/.npz written by "
        "generate (or Keras's mnist.npz), or the tutorial's train.mat [default: the MNIST cache]."
    )
    assert sources.FORMS == (
        "an MNIST IDX directory, an ImageFolder DIR/<class>/*.png, a folder of pictures, an .h5/.npz from generate, "
        "or the tutorial's .mat"
    )


def _named_model(tmp_path: Path, tiny_cvae: Path) -> Path:
    named = tmp_path / "named"
    shutil.copytree(tiny_cvae, named)
    card = json.loads((named / "model.json").read_text())
    (named / "model.json").write_text(json.dumps({**card, "classes": WORDS}))
    return named


def test_interpolate_digit_takes_a_class_name(tmp_path, tiny_cvae):
    named = _named_model(tmp_path, tiny_cvae)
    pictures = []
    for label in ("seven", "7"):
        out = tmp_path / f"grid-{label}.png"
        argv = ["interpolate", "--model", str(named), "--grid", "3", "--digit", label, "--scale", "1", "-o", str(out)]
        result = runner.invoke(app, [*argv, "-q"])
        assert result.exit_code == 0, result.output
        pictures.append(out.read_bytes())
    assert pictures[0] == pictures[1]
    grid = ["interpolate", "--model", str(named), "--grid", "3", "-o", str(tmp_path / "g.png"), "--digit"]
    result = runner.invoke(app, [*grid, "3,8"])
    assert result.exit_code == 2 and "'3,8': give one label, e.g. 2 or Trouser" in result.output
    result = runner.invoke(app, [*grid, "eleven"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: --digit 'eleven' is not a label of model tiny-cvae: pass an index 0-9 or one of its classes (zero, "
        "one, two, three, four, five, six, seven, eight, nine)\n"
    )


def test_model_methods_name_a_misspelt_keyword(tiny_cvae, dataset):
    model = mnistgen.load(str(tiny_cvae))
    cases = [
        (
            lambda: model.generate(digits=7),
            "Model.generate takes no keyword digits: use one of classes, classifier, count, digit, min_confidence, "
            "precision, prior, seed, sharpen, temperature, truncation",
        ),
        (
            lambda: model.grid(20, digits=2),
            "Model.grid takes no keyword digits: use one of bounds, digit, dims, n, sigma",
        ),
        (
            lambda: model.interpolate(digits=[3, 8], step=3),
            "Model.interpolate takes no keyword step: use one of digit, digits, images, labels, loop, method, points, "
            "seed, steps",
        ),
        (
            lambda: model.encode(dataset.test.images[:2], label=3),
            "Model.encode takes no keyword label: use one of images, labels",
        ),
    ]
    for call, message in cases:
        with pytest.raises(mnistgen.MnistgenError) as caught:
            call()
        assert str(caught.value) == message
    assert model.grid(3, digit=2)[0].ndim == 2  # the right keywords still pass through


def test_train_says_what_it_holds_out(tmp_path, mnist_dir, capsys):
    argv = ["train", "--model", "vae", "--recipe", "vae-2d", "--indices", "5", "--batch-size", "1", "--epochs", "1"]
    argv += ["--channels", "8", "--data", str(mnist_dir), "--out", str(tmp_path / "one"), "--device", "cpu"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert (
        "training vae (recipe vae-2d, latent 2) on 1 image (--indices names every training image: none held out), cpu"
        in result.output
    )

    from mnistgen.cli.progress import TrainProgress
    from mnistgen.config import RECIPES

    recipe = RECIPES["cvae-2d"]
    capsys.readouterr()
    for tested in (False, True):
        progress = TrainProgress(None, "cpu, into runs/x", tested)
        progress.on_plan(recipe.model_config(10), recipe.train_options(), 800)
    assert capsys.readouterr().err.splitlines() == [
        "training cvae (recipe cvae-2d, latent 2) on 800 images (10% of each label held out for validation, 10% for "
        "testing unless the data has a test split; at least 1 each), cpu, into runs/x",
        "training cvae (recipe cvae-2d, latent 2) on 800 images (10% of each label held out for validation, tested on "
        "--test; at least 1 each), cpu, into runs/x",
    ]


def test_tutorial_script_help_usage_and_reruns():
    shown = subprocess.run(["bash", str(TUTORIAL), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "examples/tutorial_figures.sh MNIST_DIR [OUT_DIR]" in shown.stdout
    assert subprocess.run(["bash", str(TUTORIAL), "-h"], capture_output=True, text=True).returncode == 0
    bare = subprocess.run(["bash", str(TUTORIAL)], capture_output=True, text=True)
    assert bare.returncode == 2 and bare.stderr == "usage: examples/tutorial_figures.sh MNIST_DIR [OUT_DIR]\n"
    empty = subprocess.run(["bash", str(TUTORIAL), str(ROOT / "docs")], capture_output=True, text=True)
    assert empty.returncode == 1 and "holds no train-images-idx3-ubyte[.gz]" in empty.stderr
    script = TUTORIAL.read_text()
    assert re.search(r"^q=\(--quiet --force\)", script, re.M)  # its OUT_DIR already holds the figures
    writes = [line for line in script.splitlines() if re.match(r"\s*mnistgen \w+ .*\$out/", line)]
    assert len(writes) == 8 and all('"${q[@]}"' in line for line in writes), writes
    assert "--model vae --recipe vae-2d" in script  # the tutorial's 2-D VAE, as the README's one-image example
    assert "88 s" in script and "88 s" in README.read_text(encoding="utf-8")


def test_refit_prior_help_is_its_whole_description(capsys):
    spec = importlib.util.spec_from_file_location("refit_prior", ROOT / "examples" / "refit_prior.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main(["--help"])
    text = capsys.readouterr().out
    assert "Gaussian mixture per\nlabel) from its training data" in text
    assert "Example: python examples/refit_prior.py --model weights/cvae.safetensors" in text


def test_readme_names_what_the_code_does():
    text = README.read_text(encoding="utf-8")
    from mnistgen import predictor

    folder = predictor.export_folder(
        "decoder", "90b279027b4c75e5" + "0" * 48, "-sharpen3", {"paddle": "3.3.1", "format": "json"}
    )
    assert f"`{folder.name}`" in text
    layout = text.split("## Layout", 1)[1].split("```")[1]
    modules = sorted(p.name for p in (ROOT / "mnistgen").glob("*.py"))
    assert [m for m in modules if m not in layout] == []
    assert not re.search(r"[.)]- `", text)  # a list item glued to the sentence before it
    assert "`model.interpolate` defaults to `loop=False`" in text
    frames = mnistgen.load("cvae-2d", device="cpu").interpolate(digits=[3, 8], steps=16)
    assert len(frames) == 17 and not np.array_equal(frames[0], frames[-1])
