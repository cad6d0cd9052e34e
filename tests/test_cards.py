"""Damaged weights headers, model cards and resume states: each is refused with one line that
names the file and the fix, before anything is written (checkpoint.py, settings.py, sampling.py, train.py).

The weights here are zeros of a small real architecture, written by checkpoint.save: checking a
header or a card needs no trained model and no Paddle."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import typer
from safetensors.numpy import save_file
from typer.testing import CliRunner

from mnistgen import api, checkpoint, config, sample, sampling, train
from mnistgen.cli import app
from mnistgen.config import ModelConfig, TrainOptions
from mnistgen.errors import MnistgenError

runner = CliRunner()

LATENT = 2
CLASSES = 10
IDENTITY = [[1.0, 0.0], [0.0, 1.0]]
FITTED = {"mean": [0.0, 0.0], "cholesky": IDENTITY}
MIXTURE = {"weights": [1.0], "means": [[0.0, 0.0]], "cholesky": [IDENTITY]}
DAMAGED_CLASSES = 'has damaged "classes": they must be 10 distinct names (text), one per label;'
SAMPLING = {"prior": "mixture", "temperature": 1.1, "sharpen": 3.0, "truncation": 0, "min_confidence": 0}


def _model(root: Path, change=None) -> Path:
    """A CVAE's weights (zeros) and card with both priors and a sampling section, as train writes
    them; `change(card)` damages the card. Returns the .safetensors path."""
    config = ModelConfig(kind="cvae", latent=LATENT, channels=4, num_classes=CLASSES)
    arrays = {name: np.zeros(shape, np.float32) for name, shape in config.param_shapes().items()}
    keys = ["all"] + [str(c) for c in range(CLASSES)]
    card = {
        "name": "toy",
        "config": config.to_dict(),
        "classes": [str(c) for c in range(CLASSES)],
        "latent_stats": {"fitted": {k: dict(FITTED) for k in keys}, "mixture": {k: dict(MIXTURE) for k in keys}},
        "sampling": dict(SAMPLING),
    }
    weights = checkpoint.save(root / "toy", arrays, card)
    if change is not None:
        card = json.loads(weights.path.with_suffix(".json").read_text())
        change(card)
        weights.path.with_suffix(".json").write_text(json.dumps(card))
    return weights.path


def _generate(path: Path, out: Path, *args: str):
    return runner.invoke(app, ["generate", "--model", str(path), "-d", "3", "-n", "2", "-o", str(out), "-q", *args])


def _error(result) -> str:
    """The one error line (and that nothing else went wrong)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


# -- safetensors headers ----------------------------------------------------------------------


def _rewrite_header(path: Path, change) -> None:
    """Apply `change(header)` to a safetensors file's JSON header, keeping its tensor bytes."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    change(header)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


TENSOR = "decoder.fc.weight"
DAMAGED_ENTRY = (
    "has a damaged header (tensor decoder.fc.weight's dtype, shape or data_offsets is malformed): train or download "
    "it again"
)


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda h: h.update({TENSOR: 5}), DAMAGED_ENTRY),
        (lambda h: h.update({TENSOR: [1, 2]}), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(shape=5), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(shape="ab"), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(dtype=["F32"]), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(data_offsets=7), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(data_offsets=[0, 1, 2]), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(data_offsets=["0", "4"]), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(data_offsets=[float(o) for o in h[TENSOR]["data_offsets"]]), DAMAGED_ENTRY),
        (lambda h: h[TENSOR].update(data_offsets=[-8, -4]), DAMAGED_ENTRY),
        (
            lambda h: h[TENSOR].update(data_offsets=[0, h[TENSOR]["data_offsets"][1] - h[TENSOR]["data_offsets"][0]]),
            "is damaged (tensor decoder.fc.weight's bytes overlap another tensor or leave a gap): train or download "
            "it again",
        ),
        (
            lambda h: h["__metadata__"].update(mnistgen_config=5),
            "has a damaged header (its __metadata__ is not a map of text to text): train or download it again",
        ),
        (
            lambda h: h.update(__metadata__=[1]),
            "has a damaged header (its __metadata__ is not a map of text to text): train or download it again",
        ),
    ],
    ids=[
        "entry-int",
        "entry-list",
        "shape-int",
        "shape-text",
        "dtype-list",
        "offsets-int",
        "offsets-three",
        "offsets-text",
        "offsets-float",
        "offsets-negative",
        "offsets-overlap",
        "metadata-int",
        "metadata-list",
    ],
)
def test_a_damaged_safetensors_header_is_refused_in_one_line(tmp_path, change, problem):
    path = _model(tmp_path)
    _rewrite_header(path, change)
    with pytest.raises(MnistgenError) as caught:
        checkpoint.inspect(str(path))
    assert str(caught.value) == f"{path} {problem}"
    result = runner.invoke(app, ["models", "show", str(path)])
    assert _error(result) == f"Error: {path} {problem}"


def test_bytes_after_the_last_tensor_are_refused(tmp_path):
    path = _model(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0" * 4)
    with pytest.raises(MnistgenError) as caught:
        checkpoint.inspect(str(path))
    assert str(caught.value) == f"{path} is damaged (bytes after its last tensor): train or download it again"


def test_a_lone_safetensors_file_with_a_number_for_its_config_is_refused(tmp_path):
    path = _model(tmp_path)
    path.with_suffix(".json").unlink()
    _rewrite_header(path, lambda h: h["__metadata__"].update(mnistgen_config=5))
    result = runner.invoke(app, ["models", "show", str(path)])
    assert _error(result) == (
        f"Error: {path} has a damaged header (its __metadata__ is not a map of text to text): train or download it "
        "again"
    )


def test_the_model_list_shows_a_damaged_file_as_unreadable(tmp_path, monkeypatch):
    good = _model(tmp_path)
    (tmp_path / "bad.safetensors").write_bytes(good.read_bytes())
    _rewrite_header(tmp_path / "bad.safetensors", lambda h: h.update({TENSOR: 5}))
    (tmp_path / "bad.json").write_bytes(good.with_suffix(".json").read_bytes())
    monkeypatch.setenv(checkpoint.WEIGHTS_ENV, str(tmp_path))
    rows = {row["name"]: row for row in api.models()}
    assert rows["bad"] == {"name": "bad", "error": f"{tmp_path / 'bad.safetensors'} {DAMAGED_ENTRY}"}
    assert rows["toy"]["kind"] == "cvae" and "error" not in rows["toy"]
    result = runner.invoke(app, ["models"], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and "unreadable" in result.stdout


# -- model cards: their sections ---------------------------------------------------------------


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda c: c.update(sampling=[1]), 'has a damaged "sampling" (a list, not an object)'),
        (lambda c: c.update(sampling="x"), 'has a damaged "sampling" (text, not an object)'),
        (lambda c: c.update(latent_stats=[1]), 'has a damaged "latent_stats" (a list, not an object)'),
        (lambda c: c.update(metrics=3), 'has a damaged "metrics" (a number, not an object)'),
        (lambda c: c.update(name=5), 'has a damaged "name" (a number, not text)'),
        (lambda c: c.update(classes="0123456789"), 'has a damaged "classes" (text, not a list)'),
        (lambda c: c.update(classes=list(range(10))), DAMAGED_CLASSES),
        (lambda c: c.update(classes=["a", "b"]), DAMAGED_CLASSES),
        (lambda c: c.update(classes=["cat"] * 10), DAMAGED_CLASSES),
        (lambda c: c.update(classes=[" "] + [str(i) for i in range(1, 10)]), DAMAGED_CLASSES),
    ],
    ids=[
        "sampling-list",
        "sampling-text",
        "stats-list",
        "metrics-number",
        "name-number",
        "classes-text",
        "classes-ints",
        "classes-short",
        "classes-repeated",
        "classes-blank",
    ],
)
def test_a_damaged_card_section_is_refused(tmp_path, change, problem):
    path = _model(tmp_path, change)
    fix = " train or download the weights again" if problem.endswith(";") else ": train or download the weights again"
    result = _generate(path, tmp_path / "o.npz")
    assert _error(result) == f"Error: model card {path.with_suffix('.json')} {problem}{fix}"
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("version", ["1", 1.0, True, 0])
def test_a_card_version_that_is_not_a_whole_number_is_damaged_not_newer(tmp_path, version):
    path = _model(tmp_path, lambda c: c.update(format_version=version))
    with pytest.raises(MnistgenError) as caught:
        checkpoint.inspect(str(path))
    assert str(caught.value) == (
        f'{path.with_suffix(".json")} has a damaged "format_version" ({version!r}, not a whole number; this mnistgen '
        "writes 1): train or download the weights again"
    )


# -- model cards: the sampling they recommend --------------------------------------------------


@pytest.mark.parametrize(
    "key, value, option, accepts",
    [
        ("temperature", "hot", "--temperature", "a number from 0 to 10"),
        ("temperature", [1], "--temperature", "a number from 0 to 10"),
        ("temperature", float("nan"), "--temperature", "a number from 0 to 10"),
        ("temperature", 1e300, "--temperature", "a number from 0 to 10"),
        ("temperature", -50, "--temperature", "a number from 0 to 10"),
        ("temperature", True, "--temperature", "a number from 0 to 10"),
        ("sharpen", "x", "--sharpen", "a number from 1 to 10"),
        ("sharpen", 1e30, "--sharpen", "a number from 1 to 10"),
        ("truncation", "x", "--truncation", "a number from 0 to 100"),
        ("truncation", -1, "--truncation", "a number from 0 to 100"),
        ("min_confidence", "x", "--min-confidence", "a number from 0 to 1"),
        ("min_confidence", 5, "--min-confidence", "a number from 0 to 1"),
        ("min_confidence", -1, "--min-confidence", "a number from 0 to 1"),
        ("prior", ["x"], "--prior", "standard, fitted, mixture"),
        ("prior", "bogus", "--prior", "standard, fitted, mixture"),
        ("prior", "auto", "--prior", "standard, fitted, mixture"),
    ],
)
def test_a_card_recommendation_out_of_its_option_range_is_refused(tmp_path, key, value, option, accepts):
    path = _model(tmp_path, lambda c: c["sampling"].update({key: value}))
    result = _generate(path, tmp_path / "o.npz")
    assert _error(result) == (
        f"Error: model card {path.with_suffix('.json')} recommends {key} {value!r} ({option} takes {accepts}): pass "
        f"{option} to override it, or fix the card"
    )
    assert not (tmp_path / "o.npz").exists()


def test_a_card_classifier_that_is_not_a_file_name_is_refused_once(tmp_path):
    path = _model(tmp_path, lambda c: c["sampling"].update(min_confidence=0.9, classifier=5))
    result = _generate(path, tmp_path / "o.npz")
    assert _error(result) == (
        f"Error: model card {path.with_suffix('.json')} recommends classifier 5 (--classifier takes a file name): "
        "pass --classifier to override it, or fix the card"
    )
    assert not (tmp_path / "o.npz").exists()


def test_a_recommendation_that_fails_while_sampling_is_named_as_the_cards(tmp_path, tiny_classifier):
    """An in-range truncation or threshold that fails at run time: the user passed no option, so
    the message names the card that recommended it (and the option still overrides it)."""
    tight = _model(tmp_path / "a", lambda c: c["sampling"].update(truncation=0.001))
    assert _error(_generate(tight, tmp_path / "a.npz")) == (
        f"Error: truncation 0.001 (recommended by model card {tight.with_suffix('.json')}) keeps almost no draws "
        "of a 2-dimensional latent (their typical length is 1.4): use a larger radius"
    )
    assert not (tmp_path / "a.npz").exists()
    assert _generate(tight, tmp_path / "a.npz", "--truncation", "0").exit_code == 0
    shutil.copytree(tiny_classifier, tmp_path / "b" / "companion")
    strict = _model(tmp_path / "b", lambda c: c["sampling"].update(min_confidence=1.0, classifier="companion"))
    message = _error(_generate(strict, tmp_path / "b.npz"))
    assert message.startswith(
        f"Error: min_confidence 1 (recommended by model card {strict.with_suffix('.json')}): only 0.00% of samples "
        "of label 3 pass after "
    )
    assert message.endswith("tries; lower --min-confidence or use a better model")
    assert not (tmp_path / "b.npz").exists()


def test_an_explicit_option_overrides_a_damaged_recommendation(tmp_path):
    path = _model(tmp_path, lambda c: c["sampling"].update(temperature="hot", sharpen=1e30, prior=["x"]))
    weights = checkpoint.inspect(str(path))
    spec = sampling.resolve_sampling(weights, config.SamplingRequest(prior="fitted", temperature=0.5, sharpen=2.0))
    assert (spec.prior.kind, spec.temperature, spec.sharpen) == ("fitted", 0.5, 2.0)


def test_the_ranges_of_the_recommendations_are_the_options(tmp_path):
    weights = checkpoint.inspect(str(_model(tmp_path)))
    spec = sampling.resolve_sampling(weights)
    assert (spec.prior.kind, spec.temperature, spec.sharpen, spec.min_confidence) == ("mixture", 1.1, 3.0, 0.0)
    assert config.SETTING_RANGES["temperature"] == ("--temperature", 0.0, 10.0)
    assert config.SETTING_RANGES["min_confidence"] == ("--min-confidence", 0.0, 1.0)
    commands = typer.main.get_command(app).commands
    for command in ("generate", "evaluate"):  # the options Typer checks take the same ranges, defined once
        options = {param.opts[0]: param for param in commands[command].params}
        for option, low, high in config.SETTING_RANGES.values():
            checked = options[option] if hasattr(options[option], "min") else options[option].type  # Typer / Click
            assert (checked.min, checked.max) == (low, high), (command, option)


# -- model cards: the fitted priors ------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, damage, label",
    [
        ("fitted", lambda t: t.update({"3": {"mean": [0.0, 0.0]}}), "3"),
        ("fitted", lambda t: t.pop("3"), "3"),
        ("fitted", lambda t: t.update({"3": {"mean": [0.0, 0.0], "cholesky": [[1.0]]}}), "3"),
        ("fitted", lambda t: t["5"].update(mean=[float("nan"), 0.0]), "5"),
        ("mixture", lambda t: t.pop("3"), "3"),
        ("mixture", lambda t: t["3"].update(means=[[float("nan"), 0.0]]), "3"),
        ("mixture", lambda t: t["3"].update(weights=[float("inf")]), "3"),
        ("mixture", lambda t: t["3"].update(weights=[[1.0]]), "3"),
    ],
    ids=["no-factor", "no-label", "wrong-shape", "nan-mean", "mix-no-label", "mix-nan-means", "mix-inf", "mix-nested"],
)
def test_a_damaged_prior_table_is_refused_naming_the_card_and_the_refit(tmp_path, kind, damage, label):
    path = _model(tmp_path, lambda c: damage(c["latent_stats"][kind]))
    fallback = {"fitted": "standard", "mixture": "fitted"}[kind]
    result = _generate(path, tmp_path / "o.npz", "--prior", kind)
    assert _error(result) == (
        f"Error: model card {path.with_suffix('.json')} has a damaged {kind} prior (label {label}): refit it with "
        f"examples/refit_prior.py, or pass --prior {fallback}"
    )
    assert not (tmp_path / "o.npz").exists()


def test_a_prior_table_that_is_a_list_is_refused(tmp_path):
    path = _model(tmp_path, lambda c: c["latent_stats"].update(mixture=[1, 2]))
    with pytest.raises(MnistgenError, match=r"has a damaged mixture prior \(label 0\): refit it"):
        sampling.make_prior(checkpoint.inspect(str(path)))  # the card recommends the mixture


def test_well_formed_prior_tables_map_draws_to_their_gaussians(tmp_path):
    weights = checkpoint.inspect(str(_model(tmp_path)))
    for kind in ("fitted", "mixture"):
        prior = sampling.make_prior(weights, kind)
        z = sample.latents(0, 3, 0, LATENT, 1.0, 0, prior)
        assert z.shape == (sample.BLOCK, LATENT) and np.isfinite(z).all()


# -- resume states ------------------------------------------------------------------------------


def _state(**changes) -> dict:
    state = {
        "config": ModelConfig(kind="cvae", channels=4).to_dict(),
        "epoch": 1,
        "options": asdict(TrainOptions(epochs=1)),
        "history": [{"epoch": 1, "seconds": 0.5}],
        "best": {"epoch": 1, "val_loss": 500.0},
    }
    state.update(changes)
    return state


@pytest.mark.parametrize(
    "state, problem",
    [
        ([], "not a JSON object"),
        ({k: v for k, v in _state().items() if k != "epoch"}, '"epoch" is None, not a count of epochs'),
        (_state(epoch="x"), "\"epoch\" is 'x', not a count of epochs"),
        (_state(epoch=2), '"history" does not hold the metrics of its 2 epochs'),
        (_state(history="x"), '"history" does not hold the metrics of its 1 epochs'),
        (_state(best={"epoch": 9}), '"best" does not name one of its epochs'),
        (_state(best=[1]), '"best" does not name one of its epochs'),
        (_state(options=[1]), '"options" is not an object'),
        (_state(options={**asdict(TrainOptions()), "batch_size": "big"}), "option batch_size is 'big'"),
        (_state(options={**asdict(TrainOptions()), "batch_size": 0}), "option batch_size is 0"),
        (_state(options={**asdict(TrainOptions()), "lr": float("nan")}), "option lr is nan"),
        (_state(options={**asdict(TrainOptions()), "lr_decay": 1}), "option lr_decay is 1"),
        (_state(options={**asdict(TrainOptions()), "seed": 1.5}), "option seed is 1.5"),
        (_state(options={**asdict(TrainOptions()), "extra": []}), "option extra is []"),
        (_state(config=None), 'no "config" object'),
    ],
)
def test_a_damaged_resume_state_is_named(state, problem):
    assert train.state_problem(state) == problem


def test_a_whole_resume_state_passes():
    assert train.state_problem(_state()) is None
    assert train.state_problem(_state(best={}, options={"epochs": None, "command": 5})) is None  # replaced on resume


@pytest.mark.parametrize(
    "value, valid",
    [(None, True), (0.1, True), (3, True), ("x", True), (True, True), (float("nan"), False), (-1, False)],
)
def test_an_optional_train_option_is_checked_as_its_value_is(value, valid):
    """A future `foo: Optional[float] = None` in TrainOptions: its saved values must not read as damage."""
    assert train._valid_option("foo", value, None) is valid


def test_resume_from_a_damaged_state_is_refused_and_changes_nothing(tmp_path, mnist_dir):
    run = tmp_path / "run"
    run.mkdir()
    save_file({"model/x": np.zeros(1, np.float32)}, str(run / "train_state.safetensors"))
    (run / "train_state.json").write_text(json.dumps(_state(epoch="x")))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    args = ["train", "--data", str(mnist_dir), "--limit", "64", "--epochs", "2", "--channels", "4", "-q"]
    result = runner.invoke(app, [*args, "--no-classifier", "--processes", "1", "--out", str(run), "--resume"])
    assert _error(result) == (
        f"Error: cannot resume from {run}: train_state.json is damaged (\"epoch\" is 'x', not a count of epochs); "
        "start without --resume in a new --out"
    )
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_grid_of_a_card_without_latent_ranges_names_the_fix(tmp_path):
    path = _model(tmp_path)  # priors, but no mean_min/max nor percentiles
    result = runner.invoke(app, ["interpolate", "--model", str(path), "--grid", "3", "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        "Error: model toy records no range of its latents in its card: pass --bounds, or retrain it with mnistgen "
        "train\n"
    )
    assert not (tmp_path / "g.png").exists()
