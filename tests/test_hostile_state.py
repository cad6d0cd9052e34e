"""Hostile state and outputs: FIFOs where generate, the weights search or the export cache would
read, --force on files generate did not write, damaged cards and train_state files, JSON nested
too deeply or with over-long integers. Each is refused in one line (or, for the export cache,
rebuilt), never hangs and loses nothing. FIFOs are checked before any open, so no test can block.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen import checkpoint, data, doctor, parallel, predictor
from mnistgen.cli import app
from mnistgen.errors import MnistgenError

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("no_hang")  # FIFOs: a regressed guard would block for ever

DEEP = "[" * 100_000 + "]" * 100_000  # nesting beyond Python's stack
BIG_INT = "9" * 5_000  # beyond Python's 4,300-digit int conversion limit


def _generate(model, out: Path, *args: str, digit: str = "1"):
    argv = ["generate", "--model", str(model), "-d", digit, "-n", "2", "-o", str(out), "-q", *args]
    return runner.invoke(app, [str(a) for a in argv])


def _error(result) -> str:
    assert result.exit_code == 1, result.output
    return result.stderr.strip()


# -- finding 2: an existing --out that is a FIFO ---------------------------------------------------


@pytest.mark.parametrize("name, flags", [("o.h5", ()), ("o.npz", ()), ("o.tar", ()), ("o.png", ("--format", "grid"))])
@pytest.mark.parametrize("mode", ["--force", "--resume"])
def test_an_output_that_is_a_fifo_is_refused_unopened(tmp_path, tiny_cvae, name, flags, mode):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    result = _generate(tiny_cvae, fifo, mode, *flags)
    assert _error(result) == f"Error: --out {fifo} is a FIFO, not a file generate wrote: choose another --out"


# -- finding 3: a FIFO among the weights -----------------------------------------------------------


def test_a_fifo_named_like_weights_is_listed_as_unreadable_and_refused(tmp_path, tiny_cvae, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    fifo = folder / "evil.safetensors"
    os.mkfifo(fifo)
    monkeypatch.setenv(checkpoint.WEIGHTS_ENV, str(folder))
    message = f"weights file {fifo} is a FIFO, not a file: pass a regular file"
    listed = runner.invoke(app, ["models", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {"name": "evil", "error": message} in rows and any(row["name"] == "cvae" for row in rows)
    for spec in ("evil", str(fifo)):
        assert _error(_generate(spec, tmp_path / "g.h5")) == f"Error: {message}"


# -- findings 4 and 19: a damaged export manifest is rebuilt -------------------------------------


@pytest.mark.parametrize("damage", ["fifo", "deep"])
def test_a_damaged_export_manifest_is_rebuilt(tmp_path, tiny_cvae, monkeypatch, damage):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    first = _generate(tiny_cvae, tmp_path / "a.h5")
    assert first.exit_code == 0, first.output
    (manifest,) = (tmp_path / "cache" / predictor.INFERENCE_SUBDIR).glob("decoder-*/" + predictor.MANIFEST)
    manifest.unlink()
    if damage == "fifo":
        os.mkfifo(manifest)
        lock = manifest.parent.with_name(f".{manifest.parent.name}.lock")
        lock.unlink()
        os.mkfifo(lock)  # replaced, never opened
    else:
        manifest.write_text(DEEP)
    expected = "the manifest is a FIFO" if damage == "fifo" else "unreadable manifest"
    rows = [row for row in doctor.cache_checks() if row["check"] == f"export {manifest.parent.name}"]
    assert rows == [doctor.check(rows[0]["check"], doctor.WARN, expected, "it is rebuilt on next use")]
    again = _generate(tiny_cvae, tmp_path / "b.h5")
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["decoder"] == "predictor" and "decoder_note" not in summary
    assert manifest.is_file() and predictor.check_export(manifest.parent) is None


# -- findings 10 and 11: --force recognises generate's output by what it records -------------------


def test_force_refuses_a_folder_whose_manifest_generate_did_not_write(tmp_path, tiny_cvae):
    out = tmp_path / "precious"
    for label in ("3", "7"):
        (out / label).mkdir(parents=True)
        (out / label / "my_photo.png").write_bytes(b"the user's photo")
    (out / "mnistgen.json").write_text(json.dumps({"comment": "my notes"}))
    result = _generate(tiny_cvae, out, "--force")
    assert _error(result) == (
        f"Error: --out {out} holds files that generate did not write (its mnistgen.json was not written by "
        "generate): --force replaces only generate's output; choose another directory"
    )
    (out / "mnistgen.json").unlink()
    os.mkfifo(out / "mnistgen.json")  # never opened
    assert "(its mnistgen.json was not written by generate)" in _error(_generate(tiny_cvae, out, "--force"))
    assert sorted(p.read_bytes() for p in out.rglob("*.png")) == [b"the user's photo"] * 2


def test_force_keeps_label_folders_generate_did_not_write(tmp_path, tiny_cvae):
    out = tmp_path / "o"
    assert _generate(tiny_cvae, out).exit_code == 0  # digit 1
    (out / "5").mkdir()
    (out / "5" / "mine.png").write_bytes(b"the user's")
    replaced = _generate(tiny_cvae, out, "--force", digit="2")
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in out.iterdir()) == ["2", "5", "metadata.jsonl", "mnistgen.json"]
    assert (out / "5" / "mine.png").read_bytes() == b"the user's"
    result = _generate(tiny_cvae, out, "--force", digit="5")  # 5/ is a folder generate's manifest does not name
    assert _error(result) == (
        f"Error: --out {out} holds files that generate did not write (5/ is not named in generate's "
        "mnistgen.json): --force replaces only generate's output; choose another directory"
    )
    assert (out / "5" / "mine.png").read_bytes() == b"the user's"


def _user_h5(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f["results"] = np.arange(3)
        f.attrs["seed"] = 42
        f.attrs["note"] = "my experiment"


def _user_npz(path: Path) -> None:
    np.savez(path, results=np.arange(3), attrs=np.array(json.dumps({"seed": 42})))


def _user_tar(path: Path) -> None:
    record = path.with_name("0.json")
    record.write_text(json.dumps({"seed": 42, "note": "mine"}))
    with tarfile.open(path, "w") as archive:
        archive.add(record, arcname="0.json")
    record.unlink()


@pytest.mark.parametrize("name, make", [("x.h5", _user_h5), ("x.npz", _user_npz), ("x.tar", _user_tar)])
def test_force_refuses_a_users_file_that_records_a_seed(tmp_path, tiny_cvae, name, make):
    out = tmp_path / name
    make(out)
    before = out.read_bytes()
    assert _error(_generate(tiny_cvae, out, "--force")) == (
        f"Error: {out} was not written by mnistgen generate (no settings recorded in {name}): choose another --out"
    )
    assert out.read_bytes() == before


@pytest.mark.parametrize("name", ["o.h5", "o.npz", "o.tar", "o.png", "o"])
def test_force_still_replaces_generates_own_output(tmp_path, tiny_cvae, name):
    out = tmp_path / name
    assert _generate(tiny_cvae, out).exit_code == 0
    replaced = _generate(tiny_cvae, out, "--force", "--seed", "3")
    assert replaced.exit_code == 0, replaced.output


# -- findings 12 and 13: JSON nested too deeply, integers too long ---------------------------------


def test_a_deep_or_huge_json_in_an_output_is_one_line(tmp_path, tiny_cvae):
    import h5py

    out = tmp_path / "o.h5"
    assert _generate(tiny_cvae, out, "--seed", "5").exit_code == 0
    with h5py.File(out, "a") as f:
        f.attrs["labels"] = DEEP
    result = _generate(tiny_cvae, out, "--seed", "5", "--resume")
    assert _error(result) == (
        f"Error: --resume: {out} was written with other settings: labels {DEEP[:60]}... (now [1]); repeat its "
        "command to finish it, or pass --force to replace it"
    )
    deep_tar = tmp_path / "deep.tar"
    (tmp_path / "0.json").write_text(DEEP)
    with tarfile.open(deep_tar, "w") as archive:
        archive.add(tmp_path / "0.json", arcname="0.json")
    assert _error(_generate(tiny_cvae, deep_tar, "--force")) == (
        f"Error: {deep_tar} was not written by mnistgen generate (no settings recorded in deep.tar): choose "
        "another --out"
    )


def _copy_model(tiny: Path, root: Path, name: str) -> Path:
    stem = root / name
    shutil.copy(tiny / "model.safetensors", stem.with_suffix(".safetensors"))
    shutil.copy(tiny / "model.json", stem.with_suffix(".json"))
    return stem.with_suffix(".safetensors")


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"format": "mnistgen-weights", "format_version": 1, "x": ' + DEEP + "}", "JSON nested too deeply"),
        (
            '{"format": "mnistgen-weights", "format_version": 1, "x": ' + BIG_INT + "}",
            "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits",
        ),
    ],
)
def test_a_deep_or_huge_card_is_one_line(tmp_path, tiny_vae, text, reason):
    path = _copy_model(tiny_vae, tmp_path, "bad")
    path.with_suffix(".json").write_text(text)
    assert _error(_generate(path, tmp_path / "g.h5")) == (
        f"Error: model card {path.with_suffix('.json')} is not valid JSON ({reason}): train or download the "
        "weights again"
    )


def _header_only(path: Path, header: str) -> None:
    body = header.encode()
    path.write_bytes(len(body).to_bytes(8, "little") + body)


@pytest.mark.parametrize(
    "header, problem",
    [
        ('{"a": ' + DEEP + "}", "is not a safetensors file (its header is not JSON)"),
        ('{"a": ' + BIG_INT + "}", "is not a safetensors file (its header is not JSON)"),
        (json.dumps({"__metadata__": {"mnistgen_config": DEEP}}), "has damaged mnistgen metadata"),
    ],
)
def test_a_deep_or_huge_safetensors_header_is_one_line(tmp_path, header, problem):
    path = tmp_path / "st.safetensors"
    _header_only(path, header)
    assert _error(_generate(path, tmp_path / "g.h5")).startswith(f"Error: {path} {problem}")


# -- finding 15: the card's latent statistics -----------------------------------------------------


def _set(key, value):
    return lambda stats: stats.update({key: value})


def _nan(key):
    return lambda stats: stats.update({key: [float("nan")] * len(stats[key])})


def _drop(*keys):
    return lambda stats: [stats.pop(key) for key in keys]


@pytest.mark.parametrize(
    "change, problem",
    [
        (_drop("mean_p01", "mean_min"), "it has neither mean_p01 nor mean_min"),
        (_set("mean_p01", 5), "mean_p01 is not {latent} finite numbers"),
        (_set("mean_p99", "cd"), "mean_p99 is not {latent} finite numbers"),
        (_nan("mean_max"), "mean_max is not {latent} finite numbers"),
        (_set("mean_std", "inf"), "mean_std is not {latent} finite numbers"),
        (_set("images", -1), "images is not a count"),
        (_set("centroids", ["0", "1"]), "centroids is not an object keyed by labels 0..9"),
        (_set("centroids", {"x": [0.0]}), "centroids is not an object keyed by labels 0..9"),
        (_set("centroids", {"0": [1.0]}), "the centroid of label 0 is not {latent} finite numbers"),
        (_set("centroids", {"1": ["a"] * 64}), "the centroid of label 1 is not {latent} finite numbers"),
    ],
)
def test_damaged_latent_stats_are_refused_when_the_weights_load(tmp_path, tiny_vae, change, problem):
    path = _copy_model(tiny_vae, tmp_path, "stats")
    card = json.loads(path.with_suffix(".json").read_text())
    change(card["latent_stats"])
    path.with_suffix(".json").write_text(json.dumps(card))
    expected = problem.format(latent=card["config"]["latent"])
    card_path = path.with_suffix(".json")
    message = f'model card {card_path} has damaged "latent_stats" ({expected}): train or download the weights again'
    assert _error(_generate(path, tmp_path / "g.h5")) == f"Error: {message}"
    with pytest.raises(MnistgenError) as refused:
        checkpoint.inspect(str(path))
    assert str(refused.value) == message


def test_huge_latent_numbers_are_refused(tmp_path, tiny_vae):
    path = _copy_model(tiny_vae, tmp_path, "huge")
    card = json.loads(path.with_suffix(".json").read_text())
    card["latent_stats"]["mean_p99"] = [1e308] * card["config"]["latent"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(MnistgenError, match=r"\(mean_p99 is not \d+ finite numbers\)"):
        checkpoint.inspect(str(path))


# -- finding 7: the process count train_state.json records ----------------------------------------


def _state_dir(root: Path, processes) -> Path:
    run = root / "run"
    run.mkdir()
    (run / "train_state.safetensors").write_bytes(b"")
    (run / "train_state.json").write_text(json.dumps({"options": {"extra": {"processes": processes}}}))
    return run


@pytest.mark.parametrize("processes", [0, -3, "x", 2.0, True, None])
def test_a_damaged_process_count_is_refused_before_any_process_starts(tmp_path, processes):
    run = _state_dir(tmp_path, processes)
    result = runner.invoke(app, ["train", "--model", "vae", "--out", str(run), "--resume", "-q"])
    assert _error(result) == (
        f"Error: cannot resume from {run}: train_state.json is damaged (its process count is {processes!r}, not a "
        "whole number from 1); start without --resume in a new --out"
    )


def test_more_saved_processes_than_cpus_start_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTGEN_THREADS", "2")
    run = _state_dir(tmp_path, 10**6)
    with pytest.raises(MnistgenError) as refused:
        parallel.choose(None, 64, "cpu", run, True)
    assert str(refused.value) == (
        f"--resume: {run} was trained on 1000000 processes, more than the 2 CPUs usable here; resume it with "
        "--processes 1000000 to start them all anyway"
    )
    (run / "train_state.json").write_text(json.dumps({"options": {"extra": {"processes": 4}}}))
    assert parallel.choose(4, 64, "cpu", run, True) == 4  # asked for: the --processes bound applies
    (run / "train_state.json").unlink()
    os.mkfifo(run / "train_state.json")
    with pytest.raises(MnistgenError, match="train_state.json is a FIFO, not a file"):
        parallel.choose(None, 64, "cpu", run, True)


# -- findings 12 and 16: a damaged train_state -------------------------------------------------------


def _train(mnist_dir: Path, run: Path, *args: str):
    """A tiny VAE run (64 images, 8 channels, one process) into `run`."""
    argv = ["train", "--model", "vae", "--data", str(mnist_dir), "--limit", "64", "--channels", "8"]
    return runner.invoke(app, [*argv, "--batch-size", "32", "--processes", "1", "--out", str(run), "-q", *args])


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, mnist_dir) -> Path:
    run = tmp_path_factory.mktemp("runs") / "vae"
    result = _train(mnist_dir, run, "--epochs", "1")
    assert result.exit_code == 0, result.output
    return run


def _tampered(run: Path, root: Path, change) -> Path:
    from safetensors.numpy import load_file, save_file

    copy = root / "run"
    shutil.copytree(run, copy)
    arrays = load_file(str(copy / "train_state.safetensors"))
    change(arrays)
    save_file(arrays, str(copy / "train_state.safetensors"))
    return copy


@pytest.mark.parametrize(
    "change, tensor",
    [
        (lambda a: a.update({"model/decoder.fc.bias": np.zeros(3, np.float32)}), "model/decoder.fc.bias"),
        (lambda a: a.pop("model/decoder.fc.bias"), "model/decoder.fc.bias"),
        (lambda a: a.update({"optim/linear_0.b_0_moment1_0": np.zeros(3, np.float32)}), "optim/linear_0.b_0_moment1_0"),
        (lambda a: a.update({"model/extra": np.zeros(1, np.float32)}), "model/extra"),
        (lambda a: a.update({"model/decoder.out.bias": np.zeros(1, np.float64)}), "model/decoder.out.bias"),
    ],
)
def test_a_tampered_train_state_is_one_line(tmp_path, mnist_dir, one_epoch_run, change, tensor):
    copy = _tampered(one_epoch_run, tmp_path, change)
    result = _train(mnist_dir, copy, "--epochs", "2", "--resume")
    assert _error(result) == (
        f"Error: cannot resume from {copy}: train_state.safetensors is damaged (tensor {tensor} is missing, "
        "unexpected, or of another shape or type); start without --resume in a new --out"
    )


def test_a_deep_train_state_json_is_one_line(tmp_path, mnist_dir, one_epoch_run):
    copy = tmp_path / "run"
    shutil.copytree(one_epoch_run, copy)
    (copy / "train_state.json").write_text(DEEP)
    result = _train(mnist_dir, copy, "--epochs", "2", "--resume")
    assert _error(result) == (
        f"Error: cannot resume from {copy} (JSON nested too deeply): start a new run without --resume"
    )
