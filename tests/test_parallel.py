"""`mnistgen train` on every usable CPU by default: ranks it starts itself (gloo), one model, one curve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from mnistgen import parallel
from mnistgen.cli import app
from mnistgen.errors import MnistgenError

# no companion classifier: the processes are under test, not the calibration the ranks would repeat
TINY = ["--model", "cvae", "--no-classifier", "--channels", "4", "--limit", "256", "--seed", "3", "--lr", "0.003"]


def _env(**extra) -> dict:
    return {**os.environ, "MNISTGEN_THREADS": "2", **extra}  # two usable CPUs, whatever this machine has


def _command(args) -> list[str]:
    return [sys.executable, "-m", "mnistgen", "train", *map(str, args)]


def _train(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(_command(args), capture_output=True, text=True, timeout=300, cwd=cwd, env=_env())


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _curve(run: Path) -> list:
    return [{k: v for k, v in h.items() if k not in ("seconds", "images_per_s")} for h in _history(run)]


def test_default_is_two_processes_deterministic_with_one_curve(tmp_path, mnist_dir, monkeypatch):
    first = _train([*TINY, "--data", mnist_dir, "--epochs", 2, "--out", tmp_path / "a"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["epoch"] == 2  # one summary, from rank 0
    assert "on 2 processes" in first.stderr and first.stderr.count("epoch 2:") == 1
    card = json.loads((tmp_path / "a" / "model.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["global_batch_size"] == 64
    assert card["training"]["batch_size"] == 32 and "--processes 2" in card["training"]["command"]
    # the latent statistics and fitted priors come from every rank's images, not rank 0's shard
    assert card["latent_stats"]["images"] == card["training"]["train_images"] > 200
    assert [h["epoch"] for h in _history(tmp_path / "a")] == [1, 2]

    # the same seed and process count again (in-process: rank 0's output relayed through pipes)
    monkeypatch.setenv("MNISTGEN_THREADS", "2")
    again = CliRunner().invoke(
        app, ["train", *TINY, "--data", str(mnist_dir), "--epochs", "2", "--out", str(tmp_path / "b")]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["processes"] == 2
    assert _curve(tmp_path / "a") == _curve(tmp_path / "b")
    a, b = (load_file(str(tmp_path / r / "model.safetensors")) for r in "ab")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_on_two_processes_refuses_in_the_ranks_only_what_train_refuses(tmp_path, mnist_dir):
    """The ranks read the line of the resuming command: a --lr the run does not have is refused (by
    rank 0, one line, nothing written); --batch-size 64 is the global batch the run records (each
    process trains on 32), and an option left out is the run's (--lr), so they resume."""
    run = tmp_path / "run"
    first = _train([*TINY, "--data", mnist_dir, "--epochs", 1, "--out", run], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    state = (run / "train_state.safetensors").read_bytes()
    refused = _train([*TINY, "--data", mnist_dir, "--epochs", 2, "--lr", 0.01, "--out", run, "--resume"], tmp_path)
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert refused.stderr.splitlines()[-1] == (
        f"Error: --resume: {run} trains with lr 0.003 (its own setting); drop --lr 0.01, or start a new run in "
        "another --out"
    )
    assert (run / "train_state.safetensors").read_bytes() == state
    no_lr = [word for word in TINY if word not in ("--lr", "0.003")]
    again = [*no_lr, "--data", mnist_dir, "--epochs", 2, "--batch-size", 64, "--out", run, "--resume"]
    resumed = _train(again, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [h["epoch"] for h in _history(run)] == [1, 2]
    training = json.loads((run / "model.json").read_text())["training"]
    assert (training["processes"], training["batch_size"], training["lr"]) == (2, 32, 0.003)


def test_processes_1_is_the_single_process_run_bit_for_bit(tmp_path, mnist_dir, dataset):
    from mnistgen import train

    result = CliRunner().invoke(
        app,
        [
            "train",
            *TINY,
            "--data",
            str(mnist_dir),
            "--epochs",
            "1",
            "--processes",
            "1",
            "--out",
            str(tmp_path / "cli"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["processes"] == 1
    small, _ = train.select(dataset, limit=256)
    # the options the command resolves: the recipe for 256 images, with the given knobs over it
    config, options = train.plan("cvae", small, channels=4, epochs=1, seed=3, lr=0.003, batch_size=64, companion=False)
    train.train(config, small, options, tmp_path / "lib")
    cli, lib = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("cli", "lib"))
    assert cli.keys() == lib.keys() and all(np.array_equal(cli[k], lib[k]) for k in cli)


def _rank_pids(parent: int) -> list[int]:
    """Processes whose environment says `parent` started them (ranks of that run)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"{parallel.PARENT_ENV}={parent}".encode() in (
                entry / "environ"
            ).read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_interrupt_stops_every_process_and_keeps_the_last_epoch(tmp_path, mnist_dir):
    run = tmp_path / "run"
    cmd = _command([*TINY, "--data", mnist_dir, "--epochs", 500, "--out", run])
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
        # a suite started in the background (nohup, CI runners) passes SIGINT ignored to its children, and
        # Python keeps an inherited SIG_IGN: restore the default so mnistgen gets its KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while not (run / "metrics.jsonl").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(_rank_pids(proc.pid)) == 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"Interrupted: kept the last finished epoch in {run}; continue with --resume." in err
    assert _rank_pids(proc.pid) == []
    assert json.loads((run / "model.json").read_text())["training"]["epochs_done"] >= 1


def test_choose_caps_and_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTGEN_THREADS", "8")
    fresh = tmp_path / "fresh"
    assert parallel.choose(None, 64, "cpu", fresh, False) == 4  # 64 / 16
    assert parallel.choose(None, 16, "cpu", fresh, False) == 1
    assert parallel.choose(None, 64, "cpu", fresh, False, indices=[5, 25]) == 1  # two images: one process
    assert parallel.choose(3, 64, "cpu", fresh, False) == 3 and parallel.choose(None, 64, "gpu", fresh, False) == 1
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_state.safetensors").write_bytes(b"")
    (run / "train_state.json").write_text(json.dumps({"options": {"extra": {"processes": 2}}}))
    assert parallel.choose(None, 64, "cpu", run, True) == 2  # a resumed run keeps its split of the batch
    with pytest.raises(MnistgenError, match="resume it with --processes 2"):
        parallel.choose(4, 64, "cpu", run, True)
    with pytest.raises(MnistgenError, match="is not empty"):
        parallel.choose(None, 64, "cpu", run, False)
    with pytest.raises(MnistgenError, match="or resume it on CPUs with --device cpu$"):
        parallel.choose(None, 64, "gpu", run, True)  # its ranks would be CPU processes


def test_gpu_on_several_processes_is_refused_before_any_starts(tmp_path):
    """mnistgen's own ranks are gloo processes with no GPU visible: several GPUs are Paddle's launcher's."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", *TINY, "--device", "gpu", "--processes", "2", "--out", str(out)])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --device gpu: mnistgen's 2 processes would train on CPUs; for several GPUs use Paddle's launcher "
        '(python -m paddle.distributed.launch --gpus 0,1 "$(which mnistgen)" train --distributed ...), or train on '
        "one GPU with --processes 1\n"
    )
    assert not out.exists()


def test_classifier_refuses_processes():
    result = CliRunner().invoke(app, ["train", "--model", "classifier", "--processes", "2"])
    assert result.exit_code == 2 and "the classifier trains on one process" in result.stderr
