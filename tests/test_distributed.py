"""Data-parallel training with Paddle's own launcher: two CPU processes (gloo) on the fixture."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from typer.testing import CliRunner

from mnistgen.cli import app


def test_two_processes_train_one_model(tmp_path, mnist_dir):
    mnistgen = shutil.which("mnistgen") or str(__import__("pathlib").Path(sys.executable).parent / "mnistgen")
    cmd = [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        "2",
        "--log_dir",
        str(tmp_path / "log"),
        mnistgen,
        "train",
        "--distributed",
        "--no-classifier",
        "--model",
        "cvae",
        "--channels",
        "4",
        "--data",
        str(mnist_dir),
        "--epochs",
        "3",
        "--lr",
        "0.003",
        "--out",
        str(tmp_path / "run"),
        "--seed",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    logs = [(tmp_path / "log" / f"workerlog.{rank}").read_text() for rank in (0, 1)]
    summaries = [line for log in logs for line in log.splitlines() if line.startswith("{") and '"processes"' in line]
    assert len(summaries) == 1 and json.loads(summaries[0])["processes"] == 2  # rank 0 reports, once
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]  # written once per epoch, by rank 0 only
    assert history[-1]["train_loss"] < history[0]["train_loss"] and history[-1]["test_loss"] < history[0]["test_loss"]
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    # all ranks' images: the 900 left after the 10% validation share
    assert card["training"]["train_images"] == 900 and card["training"]["processes"] == 2


def test_distributed_flag_without_a_launcher_says_how():
    result = CliRunner().invoke(app, ["train", "--distributed"])
    assert result.exit_code == 2
    assert "start data-parallel training with: python -m paddle.distributed.launch --nproc_per_node N" in result.stderr


def test_ranks_on_cpus_of_a_cuda_build_ask_for_gloo():
    """Paddle's init_parallel_env takes NCCL on every CUDA build unless PADDLE_DISTRI_BACKEND says gloo,
    and NCCL cannot reduce CPU tensors: launched ranks of a CUDA build on the CPU (--device cpu, or auto
    after the GPU failed its test) ask for gloo; GPU ranks, and every rank of a CPU build, keep Paddle's choice."""
    from mnistgen.runtime import distributed_backend

    assert distributed_backend("cpu", cuda_build=True) == "gloo"
    assert distributed_backend("gpu:1", cuda_build=True) is None
    assert distributed_backend("cpu", cuda_build=False) is None
