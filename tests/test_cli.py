"""The command line: help, generate's files and determinism, and every documented error."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args, env, message",
    [
        (
            ["--model", "cvae", "--arch", "judge"],
            {},
            "--arch: only --model classifier reads --arch: drop it, or add --model classifier",
        ),
        (
            ["--augment", "affine", "--arch", "judge"],  # a cvae by default
            {},
            "--arch/--augment: only --model classifier reads --arch and --augment: drop them, or add --model "
            "classifier",
        ),
        (
            ["--model", "classifier", "--beta1", "0.9", "--latent", "8", "--likelihood", "bernoulli"],
            {},
            "--latent/--likelihood/--beta1: only a vae or cvae reads --latent, --likelihood and --beta1: drop them, or "
            "use --model vae or cvae",
        ),
        (
            ["--model", "classifier", "--no-lr-decay"],
            {},
            "--no-lr-decay: only a vae or cvae reads --no-lr-decay: drop it, or use --model vae or cvae",
        ),
        (
            ["--model", "classifier", "--resume"],
            {},
            "--resume: the classifier keeps no checkpoint to resume: drop --resume",
        ),
        (["--indices", "5", "--limit", "10"], {}, "--limit: --indices names every training image: drop --limit"),
        (
            ["--data", ".", "--download"],
            {},
            "--download: --download fills the MNIST cache, which --data replaces: drop one of them",
        ),
        (
            ["--processes", "2"],
            {"PADDLE_TRAINERS_NUM": "2", "PADDLE_TRAINER_ID": "0"},  # under paddle.distributed.launch
            "--processes: paddle.distributed.launch started the processes: drop --processes",
        ),
    ],
)
def test_train_refuses_options_the_run_would_not_read(tmp_path, monkeypatch, args, env, message):
    """Refused before any data is read or anything trained: fast, and nothing written."""
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = invoke("train", "--out", tmp_path / "run", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith(f"Error: Invalid value for {message}\n")
    assert list(tmp_path.iterdir()) == []


SHIPPED_CARDS = sorted((Path(__file__).resolve().parent.parent / "weights").glob("*.json"))


@pytest.mark.parametrize("card", SHIPPED_CARDS, ids=[card.stem for card in SHIPPED_CARDS])
def test_every_shipped_cards_command_passes_the_usage_checks(tmp_path, mnist_dir, card):
    """Each card records the train line that made it, every option at its value as earlier versions
    wrote them (`--latent 2 --likelihood gaussian` for a classifier): the line, with --data and
    --out moved here, gets past every usage check to the run directory's, which refuses a used one."""
    words = shlex.split(json.loads(card.read_text())["training"]["command"])[1:]
    for option, value in (("--data", mnist_dir), ("--out", tmp_path)):
        words[words.index(option) + 1] = str(value)
    (tmp_path / "used").write_text("")
    result = invoke(*words)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: --out {tmp_path} is not empty and holds no checkpoint to resume")


def test_train_reruns_a_line_an_earlier_version_recorded(tmp_path):
    """Earlier versions recorded every option at its value (weights/cvae.json: `--arch lenet
    --augment auto --classifier` for a cvae): an unread option at its default value passes the usage
    checks, and so does the recorded line plus --resume (whose --lr and --batch-size are the run's
    own); here the run directory is missing, so the next check's error is the answer."""
    recorded = ["--model", "cvae", "--arch", "lenet", "--augment", "auto", "--classifier", "--lr", "0.002"]
    result = invoke("train", "--out", tmp_path / "run", *recorded, "--batch-size", "128", "--resume", "--quiet")
    assert result.exit_code == 1, result.output
    assert "Invalid value" not in result.stderr and "--resume" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--force"],
            "--force: --force replaces --out, --plot and --reconstruct files; the CSV on stdout is none of them: "
            "drop it",
        ),
    ],
)
def test_encode_refuses_options_it_would_not_read(tmp_path, monkeypatch, args, message):
    """Refused before the model loads (--model names none here) or any image is read."""
    monkeypatch.chdir(tmp_path)
    result = invoke("encode", "missing.png", "--model", "no-such-model", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith(f"Error: Invalid value for {message}\n")
    assert list(tmp_path.iterdir()) == []


README = Path(__file__).resolve().parent.parent / "README.md"
# one process and no companion classifier: not what these tests are about (test_parallel and
# test_augment cover them), and each would cost a full calibration in the spawned processes
ONE_FAST = ["--processes", 1, "--no-classifier"]
COMMANDS = ["train", "generate", "interpolate", "encode", "evaluate", "models", "cache"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_every_command_has_help():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert command in result.output
        sub = invoke(command, "--help")
        assert sub.exit_code == 0, sub.output
        assert "Example: mnistgen " + command in sub.output


def test_readme_names_every_command():
    text = README.read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"mnistgen {command}" in text


def test_help_imports_neither_paddle_nor_numpy():
    code = (
        "import sys; from mnistgen.cli import main; sys.argv = ['mnistgen', 'generate', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('paddle' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False")


@pytest.mark.parametrize("columns", [40, 80, 120])
def test_progress_keeps_the_count_on_a_narrow_terminal(monkeypatch, columns):
    """At COLUMNS=40 rich squeezed generate's count out (`generating   1944 img/s   4.6% rejected`):
    the count stays, and the rate and rejected share give way first."""
    import io

    from rich.console import Console

    from mnistgen.cli.progress import progress_bar

    monkeypatch.setenv("COLUMNS", str(columns))
    progress = progress_bar(quiet=False, log=False)  # a terminal's bar
    task = progress.add_task("generating", total=50_000, info="")
    progress.update(task, completed=1234, info="  1944 img/s   4.6% rejected")
    console = Console(file=io.StringIO(), width=columns)
    console.print(progress.make_tasks_table(progress.tasks))
    line = console.file.getvalue().rstrip("\n")
    assert line.startswith("generating") and "1234/50000" in line and len(line) <= columns
    assert ("rejected" in line) == (columns > 40)


def test_progress_in_a_log_is_a_plain_line_now_and_then(monkeypatch, capsys):
    """stderr no terminal (a batch job's log): rich would draw the bar once, at the end; the log gets
    a line when a task starts, every LOG_EVERY seconds, and when it completes."""
    from mnistgen.cli import progress as cli_progress

    with cli_progress.progress_bar(quiet=False, log=True) as progress:
        task = progress.add_task("generating", total=50_000, info="")
        for done in (256, 512, 50_000):
            progress.update(task, completed=done, info="  1944 img/s   4.6% rejected")
        progress.console.print("a note")
        epoch = progress.add_task("epoch 1/2", total=4, info="")  # train counts each epoch's steps in one task
        for step, name in ((4, "epoch 1/2"), (1, "epoch 2/2"), (4, "epoch 2/2")):
            progress.update(epoch, completed=step, description=name)
        monkeypatch.setattr(cli_progress, "LOG_EVERY", 0)  # every update is due
        other = progress.add_task("grading", total=3, info="")
        for _ in range(3):
            progress.update(other, advance=1)
    assert capsys.readouterr().err.splitlines() == [
        "generating 256/50,000 (1%)  1944 img/s   4.6% rejected, 0:00:00",
        "generating 50,000/50,000 (100%)  1944 img/s   4.6% rejected, 0:00:00",
        "a note",
        "epoch 1/2 4/4 (100%), 0:00:00",
        "epoch 2/2 4/4 (100%), 0:00:00",
        "grading 1/3 (33%), 0:00:00",
        "grading 2/3 (67%), 0:00:00",
        "grading 3/3 (100%), 0:00:00",
    ]


def test_a_listing_on_an_ascii_stdout_has_ascii_borders():
    """Rich drew the table into a capture without an encoding, so Unicode borders, which an ASCII stdout
    (a Windows code page, PYTHONIOENCODING=ascii) then refused with a traceback."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([sys.executable, "-m", "mnistgen", "models"], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"+---") and b"| cvae " in done.stdout


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("mnistgen ")


def test_generate_writes_the_imagefolder_layout(tmp_path, tiny_cvae):
    out = tmp_path / "synth"
    result = invoke(
        "generate", "--digit", "0,7", "--count", 300, "--out", out, "--model", tiny_cvae, "--seed", 5, "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["0", "7", "metadata.jsonl", "mnistgen.json"]
    assert json.loads((out / "mnistgen.json").read_text())["model_sha256"] == json.loads(result.stdout)["model_sha256"]
    assert sorted(p.name for p in (out / "7").iterdir()) == [f"{i:05d}.png" for i in range(300)]
    from PIL import Image

    with Image.open(out / "7" / "00299.png") as im:
        assert im.size == (28, 28) and im.mode == "L"
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 600
    assert rows[0] == {"file_name": "0/00000.png", "label": 0, "seed": 5, "z": rows[0]["z"]} and len(rows[0]["z"]) == 2
    assert rows[-1]["file_name"] == "7/00299.png" and rows[-1]["label"] == 7
    summary = json.loads(result.stdout)  # exactly one JSON line on stdout
    assert summary["count"] == 600 and summary["seed"] == 5 and summary["model"] == "tiny-cvae"
    assert not list(out.rglob("*.part"))


def _png_bytes(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_same_seed_gives_identical_bytes(tmp_path, tiny_cvae):
    for name in ("a", "b"):
        result = invoke("generate", "-d", "3", "-n", 40, "-o", tmp_path / name, "-m", tiny_cvae, "--seed", 11, "-q")
        assert result.exit_code == 0, result.output
    result = invoke("generate", "-d", "3", "-n", 40, "-o", tmp_path / "c", "-m", tiny_cvae, "--seed", 12, "-q")
    assert result.exit_code == 0, result.output
    a, b, c = (_png_bytes(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c


def test_a_digit_is_the_same_alone_or_with_others(tmp_path, tiny_cvae):
    invoke("generate", "-d", "3", "-n", 10, "-o", tmp_path / "one", "-m", tiny_cvae, "--seed", 1, "-q")
    invoke("generate", "-d", "all", "-n", 10, "-o", tmp_path / "all", "-m", tiny_cvae, "--seed", 1, "-q")
    one, every = _png_bytes(tmp_path / "one"), _png_bytes(tmp_path / "all")
    assert len(every) == 100 and all(every[k] == v for k, v in one.items())


def test_unconditional_model_writes_unlabelled(tmp_path, tiny_vae):
    result = invoke("generate", "-n", 5, "-o", tmp_path / "u", "-m", tiny_vae, "--seed", 1, "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "u" / "unlabelled").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    assert json.loads((tmp_path / "u" / "metadata.jsonl").read_text().splitlines()[0])["label"] is None


def test_force_replaces_previous_output(tmp_path, tiny_cvae):
    out = tmp_path / "o"
    invoke("generate", "-d", "1", "-n", 20, "-o", out, "-m", tiny_cvae, "--seed", 1, "-q")
    (out / "notes.txt").write_text("mine")
    result = invoke("generate", "-d", "2", "-n", 3, "-o", out, "-m", tiny_cvae, "--seed", 1, "-q", "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["2", "metadata.jsonl", "mnistgen.json", "notes.txt"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["generate", "--digit", "11"], 1, "Error: --digit 11: model cvae knows labels 0-9 only"),
        (
            ["generate", "--digit", "a"],
            2,
            "Invalid value for --digit: 'a' is not a comma-separated list of labels (e.g. 0,3,7) or all; give class "
            "names to --class",
        ),
        (["generate", "--digit", ""], 2, "Invalid value for --digit: '' is not a comma-separated list"),
        (
            ["generate", "--count", "0"],
            2,
            "Error: Invalid value for '--count' / '-n': Input should be greater than or equal to 1",
        ),
        (
            ["generate", "--count", "-5"],
            2,
            "Error: Invalid value for '--count' / '-n': Input should be greater than or equal to 1",
        ),
        (
            ["generate", "--count", "10x"],
            2,
            "Error: Invalid value for '--count' / '-n': Input should be a valid integer",
        ),
        (
            ["generate", "--temperature", "-1"],
            2,
            "Error: Invalid value for '--temperature' / '-t': Input should be greater than or equal to 0",
        ),
        (["generate", "--model", "nope"], 2, "Invalid value for --model: unknown model 'nope': use one of"),
        (
            ["models", "--json", "show", "cvae"],
            2,
            "Error: Invalid value for --json: --json lists the models as JSON; models show prints JSON: drop it\n",
        ),
        (["generate", "--model", "missing/dir/x.safetensors"], 2, "no weights file at missing/dir/x.safetensors"),
        (
            ["train", "--data", "no/such/dir"],
            2,
            "Error: Invalid value for '--data': path 'no/such/dir' does not exist.",
        ),
        (
            ["train", "--epochs", "0"],
            2,
            "Error: Invalid value for '--epochs': Input should be greater than or equal to 1",
        ),
        (["train", "--indices", "5,x"], 2, "Invalid value for --indices: '5,x' is not a comma-separated list"),
        (
            ["train", "--model", "cvae", "--arch", "judge"],
            2,
            "Invalid value for --arch: only --model classifier reads --arch: drop it, or add --model classifier",
        ),
        (
            ["train", "--model", "classifier", "--processes", "2"],
            2,
            "Invalid value for --processes: the classifier trains on one process: drop --processes",
        ),
        (
            ["generate", "--device", "tpu"],
            2,
            "Error: Invalid value for '--device': Value error, 'tpu' is not one of 'auto', 'cpu', 'gpu'.",
        ),
        (
            ["generate", "--seed", "-1"],
            2,
            "Error: Invalid value for '--seed': Input should be greater than or equal to 0",
        ),
        (
            ["train", "--model", "gan"],
            2,
            "Error: Invalid value for '--model' / '-m': Value error, 'gan' is not one of 'vae', 'cvae', 'classifier'.",
        ),
        # integer lists take ASCII digits only, and a bounded number of them
        (
            ["generate", "--digit", "\u00b2", "--count", "1"],
            2,
            "Error: Invalid value for --digit: '\u00b2' is not a comma-separated list of labels (e.g. 0,3,7) or all; "
            "give class names to --class\n",
        ),
        (
            ["generate", "--shard", "\u00b2/3"],
            2,
            "Error: Invalid value for --shard: '\u00b2/3' is not i/n: job i of n, counting from 0 (e.g. 0/4 ... 3/4)\n",
        ),
        (["evaluate", "--seeds", "\u00b2"], 2, "Error: Invalid value for --seeds: '\u00b2' is not a comma-separated"),
        (["train", "--indices", "\u00b2"], 2, "Error: Invalid value for --indices: '\u00b2' is not a comma-separated"),
        (
            ["generate", "--class", "\u00b2"],
            2,
            "Error: Invalid value for --class: '\u00b2' is not a class index: write it with the digits 0-9\n",
        ),
        (
            ["generate", "--digit", "9" * 5000],
            2,
            "Error: Invalid value for --digit: 99999999999999999999... (5000 digits) is too large: use at most "
            "4294967295\n",
        ),
        (
            ["evaluate", "--seeds", "0,4294967296"],
            2,
            "Error: Invalid value for --seeds: 4294967296 is too large: use at most 4294967295\n",
        ),
        (
            ["generate", "--shard", "0/" + "9" * 5000],
            2,
            "Error: Invalid value for --shard: 99999999999999999999... (5000 digits) is too large",
        ),
        # names: none may be empty
        (
            ["generate", "--class", ""],
            2,
            "Error: Invalid value for --class: '' has an empty name: give comma-separated names, e.g. Sneaker,0\n",
        ),
        (
            ["train", "--class-names", ",,,,,,,,,"],
            2,
            "Error: Invalid value for --class-names: ',,,,,,,,,' has an empty name: give comma-separated names, e.g. "
            '"T-shirt/top,Trouser,..."\n',
        ),
    ],
)
def test_usage_errors(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unconditional_model_with_digit_is_refused(tmp_path, tiny_vae):
    for option, message in [
        (
            "--digit",
            "Error: model tiny-vae is an unconditional VAE and has no labels: drop --digit (it writes to unlabelled/), "
            "or use a conditional model such as cvae-2d\n",
        ),
        (
            "--class",
            "Error: model tiny-vae is an unconditional VAE and has no classes: drop --class (it writes to "
            "unlabelled/), or use a conditional model\n",
        ),
    ]:
        result = invoke("generate", option, "3", "--model", tiny_vae, "--out", tmp_path / "o")
        assert result.exit_code == 1, result.output
        assert result.stderr == message
        assert not (tmp_path / "o").exists()


def test_non_empty_out_is_refused(tmp_path, tiny_cvae):
    (tmp_path / "keep.txt").write_text("precious")
    result = invoke("generate", "-d", "1", "-n", 2, "--model", tiny_cvae, "--out", tmp_path)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: --out {tmp_path} is not empty: pass --force to replace its images, --resume to finish an "
        "interrupted job, or choose another directory\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_out_pointing_at_a_file_is_refused(tmp_path, tiny_cvae):
    (tmp_path / "f").write_text("x")
    result = invoke("generate", "-n", 2, "--model", tiny_cvae, "--out", tmp_path / "f")
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: --out {tmp_path / 'f'} is a file: give a directory (or a name ending in .h5, .hdf5, .npz, .png "
        "(a grid), .tar for one file)\n"
    )


def test_pdparams_is_refused(tmp_path):
    import pickle

    (tmp_path / "old.pdparams").write_bytes(pickle.dumps({"w": [1, 2]}))
    result = invoke("generate", "--model", tmp_path / "old.pdparams", "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert (
        "is a pickle-based file: mnistgen loads only .safetensors + .json weights, because unpickling a file can "
        "run arbitrary code" in result.stderr
    )


def test_truncated_weights_give_one_error_line(tmp_path, tiny_cvae):
    payload = (tiny_cvae / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(payload[:1000])
    result = invoke("generate", "--model", tmp_path / "cut.safetensors", "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_train_cli_runs_resumes_and_refuses_reuse(tmp_path, mnist_dir):
    run = tmp_path / "run"
    base = [
        "train",
        "--model",
        "cvae",
        "--channels",
        4,
        "--data",
        mnist_dir,
        "--out",
        run,
        "--limit",
        128,
        *ONE_FAST,
        "-q",
    ]
    result = invoke(*base, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epoch"] == 1
    again = invoke(*base, "--epochs", 1)
    assert again.exit_code == 1
    assert (
        again.stderr
        == f"Error: --out {run} is not empty: pass --resume to continue that run, or choose a new directory\n"
    )
    resumed = invoke(*base, "--epochs", 2, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    card = json.loads((run / "model.json").read_text())
    assert card["training"]["limit"] == 128 and card["training"]["command"].startswith("mnistgen train")
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    finished = invoke(*base, "--epochs", 2, "--resume")  # a finished run: nothing is trained or written again
    assert finished.exit_code == 0, finished.output
    assert json.loads(finished.stdout)["already_finished"] is True and json.loads(finished.stdout)["epoch"] == 2
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    trained_on = json.loads((run / "train_state.json").read_text())["data"]["train_images"]
    other = invoke(*base, "--epochs", 3, "--resume", "--seed", 1)  # another held-out split: other images
    assert other.exit_code == 1
    assert other.stderr == (
        f"Error: --resume: {run} was training on other images ({trained_on} to train on, now {trained_on}, "
        "or the same number but not the same ones): pass the same --data, --limit, --indices, --test and --seed, or "
        "another --out\n"
    )
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_train_resume_refuses_a_setting_other_than_the_runs(tmp_path, mnist_dir):
    """--resume trains with the run's own settings: one typed at another value is refused before
    anything is trained or written; the same value resumes, no option resumes (the run's batch, not
    the 64 train fills in), and so does the line the run recorded (every option at its value)."""
    run = tmp_path / "run"
    base = ["train", "--model", "vae", "--channels", 4, "--data", mnist_dir, "--out", run, "--limit", 64, *ONE_FAST]
    first = invoke(*base, "--epochs", 1, "--lr", 0.002, "--batch-size", 32, "-q")
    assert first.exit_code == 0, first.output
    recorded = shlex.split(json.loads((run / "model.json").read_text())["training"]["command"])
    state = {name: (run / name).read_bytes() for name in ("train_state.json", "train_state.safetensors")}
    refused = invoke(*base, "--epochs", 2, "--lr", 0.01, "--resume", "-q")
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        f"Error: --resume: {run} trains with lr 0.002 (its own setting); drop --lr 0.01, or start a new run in "
        "another --out\n"
    )
    assert {name: (run / name).read_bytes() for name in state} == state
    for epochs, given in [(2, ["--lr", 0.002, "--batch-size", 32]), (3, []), (4, recorded[2:])]:
        resumed = invoke(*base, *given, "--epochs", epochs, "--resume", "-q")
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout)["epoch"] == epochs
    training = json.loads((run / "model.json").read_text())["training"]
    assert (training["lr"], training["batch_size"]) == (0.002, 32)


def test_train_on_chosen_images(tmp_path, mnist_dir):
    result = invoke(
        "train",
        "--model",
        "vae",
        "--channels",
        4,
        "--data",
        mnist_dir,
        "--out",
        tmp_path / "r",
        "--indices",
        "5,25",
        "--epochs",
        2,
        *ONE_FAST,
        "-q",
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "r" / "model.json").read_text())
    assert card["training"]["indices"] == [5, 25] and card["training"]["train_images"] == 2
    bad = invoke("train", "--data", mnist_dir, "--out", tmp_path / "r2", "--indices", "5,1000", "-q")
    assert bad.exit_code == 1
    assert bad.stderr == "Error: --indices 1000 is out of range: the training set has 1000 images (0-999)\n"


def test_a_recipe_trains_its_own_kind_of_model(tmp_path, mnist_dir):
    small = ["--data", mnist_dir, "--channels", 4, "--indices", "5,25", "--epochs", 1, *ONE_FAST, "-q"]
    result = invoke("train", "--recipe", "vae-2d", "--out", tmp_path / "r", *small)  # no --model: the recipe's
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "r" / "model.json").read_text())
    assert card["config"]["kind"] == "vae" and "--model vae" in card["training"]["command"]
    # what a vae does not read is not in the line it records (nor in its ranks' lines): the line runs again
    assert not {"--arch", "--augment", "--classifier"} & set(shlex.split(card["training"]["command"]))
    for model, recipe, message in (
        (
            "cvae",
            "vae-2d",
            "--recipe vae-2d trains a vae, not a cvae: drop --model, or choose a cvae recipe (cvae-2d, cvae)",
        ),
        (
            "classifier",
            "cvae",
            "--recipe cvae trains a cvae, not a classifier: the classifier takes no --recipe; drop one of them",
        ),
    ):
        refused = invoke("train", "--model", model, "--recipe", recipe, "--out", tmp_path / model, *small)
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.endswith(f"Error: Invalid value for --model/--recipe: {message}\n")
        assert not (tmp_path / model).exists()


def test_missing_paddle_names_the_install_command(tmp_path, tiny_cvae):
    code = (
        "import sys; sys.modules['paddle'] = None\n"  # makes `import paddle` raise ImportError
        "from mnistgen.cli import main\n"
        f"sys.argv = ['mnistgen', 'generate', '-d', '1', '-n', '1', '--model', {str(tiny_cvae)!r}, '--out', "
        f"{str(tmp_path / 'o')!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: PaddlePaddle is not installed") and proc.stderr.count("\n") == 1
    assert proc.stderr.rstrip().endswith(
        'install Paddle: pip install "mnistgen[cpu]" (or "mnistgen[gpu]" on a CUDA machine)'
    )


CPU_BUILD_REFUSAL = (
    'Error: --device gpu: this Paddle is a CPU build; install the CUDA build (pip install "mnistgen[gpu]") or use '
    "--device cpu\n"
)


def test_gpu_on_a_cpu_build_is_refused(tmp_path, tiny_cvae, mnist_dir):
    from mnistgen.runtime import import_paddle

    if import_paddle().is_compiled_with_cuda():
        pytest.skip("a CUDA build: --device gpu may work here")
    result = invoke("generate", "-d", "1", "-n", 1, "--model", tiny_cvae, "--out", tmp_path / "o", "--device", "gpu")
    assert result.exit_code == 1
    assert result.stderr == CPU_BUILD_REFUSAL
    for model in ("classifier", "cvae"):  # the classifier honours --device as the generators do
        out = tmp_path / model
        trained = invoke("train", "--model", model, "--data", mnist_dir, "--device", "gpu", *ONE_FAST, "--out", out)
        assert trained.exit_code == 1 and trained.stderr == CPU_BUILD_REFUSAL, trained.output
        assert not out.exists()


GPU_FAILS = (
    "the GPU cannot be used (RuntimeError: (PreconditionNotMet) Cannot load cudnn shared library. Cannot invoke "
    "method cudnnGetVersion.)"
)


def test_a_gpu_that_fails_its_test_is_left_for_the_cpu_or_refused(tmp_path, tiny_cvae, broken_gpu):
    """A CUDA build whose GPU cannot run (no cuDNN, say): `auto` decodes on the CPU after one note,
    `--device gpu` is one error line naming the fix; the GPU is probed once per process."""
    from mnistgen.runtime import import_paddle

    fix = "check the CUDA/cuDNN install with `mnistgen doctor`, or use --device cpu"
    result = invoke("generate", "-d", "1", "-n", 3, "--model", tiny_cvae, "--out", tmp_path / "auto", "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"note: {GPU_FAILS}; running on the CPU ({fix})\n"
    assert json.loads(result.stdout)["decoder"] == "predictor" and import_paddle().get_device() == "cpu"
    again = invoke("generate", "-d", "1", "-n", 3, "--model", tiny_cvae, "--out", tmp_path / "again", "-q")
    assert again.exit_code == 0 and again.stderr == "", again.output  # told once
    refused = invoke("generate", "-d", "1", "-n", 3, "--model", tiny_cvae, "--out", tmp_path / "gpu", "--device", "gpu")
    assert refused.exit_code == 1
    assert refused.stderr == f"Error: --device gpu: {GPU_FAILS}; {fix}\n"
    assert broken_gpu == [0] and not (tmp_path / "gpu").exists()


def test_generate_prints_no_paddle_noise(tmp_path, tiny_cvae):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnistgen",
            "generate",
            "-d",
            "1",
            "-n",
            "3",
            "--model",
            str(tiny_cvae),
            "--out",
            str(tmp_path / "o"),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no ccache warning, no glog lines
    assert json.loads(proc.stdout)["count"] == 3


def test_other_datasets_class_names_and_class_option(tmp_path, dataset):
    """An IDX dataset with 12 classes and names: the card keeps the names, generate --class finds them."""
    from mnistgen import data

    d = tmp_path / "twelve"
    d.mkdir()
    labels = dataset.train.labels.copy()
    labels[:100] = 10 + (np.arange(100) % 2)  # two extra classes
    data.write_idx(d / "train-images-idx3-ubyte.gz", dataset.train.images)
    data.write_idx(d / "train-labels-idx1-ubyte.gz", labels)
    names = ",".join([f"c{i}" for i in range(10)] + ["Sneaker", "Bag"])
    result = invoke(
        "train",
        "--model",
        "cvae",
        "--channels",
        4,
        "--data",
        d,
        "--epochs",
        1,
        "--out",
        tmp_path / "r",
        "--class-names",
        names,
        *ONE_FAST,
        "-q",
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "r" / "model.json").read_text())
    assert card["config"]["num_classes"] == 12 and card["classes"][10:] == ["Sneaker", "Bag"]
    gen = invoke("generate", "--model", tmp_path / "r", "--class", "Bag,3", "-n", 2, "-o", tmp_path / "o", "-q")
    assert gen.exit_code == 0, gen.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.is_dir()) == ["11", "3"]
    bad = invoke("generate", "--model", tmp_path / "r", "--class", "Hat", "-o", tmp_path / "o2")
    assert bad.exit_code == 1 and "--class 'Hat': model r has classes c0, c1" in bad.stderr
    wrong = invoke("train", "--model", "cvae", "--data", d, "--out", tmp_path / "r2", "--class-names", "a,b")
    assert wrong.exit_code == 1 and "--class-names has 2 names but the data has 12 classes" in wrong.stderr


def test_cli_choices_match_the_library():
    from mnistgen import config, generate, predictor, sampling
    from mnistgen.cli import generate as generate_cli
    from mnistgen.cli import train as train_cli

    assert generate_cli.Format is config.Format is generate.Format  # one definition, not a copy
    assert tuple(p.value for p in generate_cli.PriorKind) == sampling.PRIORS
    assert tuple(p.value for p in generate_cli.Precision) == predictor.PRECISIONS
    assert train_cli.TrainOptions is config.TrainOptions


def test_cache_clear_removes_only_what_mnistgen_made(tmp_path, monkeypatch):
    root = tmp_path / "home"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"12345")
    (root / "inference" / "cvae-0123").mkdir(parents=True)
    (root / "inference" / "cvae-0123" / "model.json").write_bytes(b"{}")
    (root / "thesis.tex").write_text("years of work")
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("mine")
    monkeypatch.setenv("MNISTGEN_DATA", str(root))
    shown = json.loads(invoke("cache").stdout)
    assert shown == {"cache": str(root), "bytes": 7, "entries": {"mnist": 5, "inference": 2}}
    result = invoke("cache", "clear")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"cleared": str(root), "removed": ["mnist", "inference"], "bytes": 7}
    assert sorted(p.name for p in root.iterdir()) == ["notes", "thesis.tex"]
    assert (root / "thesis.tex").read_text() == "years of work" and (root / "notes" / "a.txt").read_text() == "mine"
    again = invoke("cache", "clear")
    assert json.loads(again.stdout) == {"cleared": str(root), "removed": [], "bytes": 0}


def test_cache_clear_leaves_a_linked_folder_alone(tmp_path, monkeypatch):
    (tmp_path / "my-mnist").mkdir()
    (tmp_path / "my-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"data")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mnist").symlink_to(tmp_path / "my-mnist")
    monkeypatch.setenv("MNISTGEN_DATA", str(tmp_path / "c"))
    result = invoke("cache", "clear")
    assert json.loads(result.stdout) == {"cleared": str(tmp_path / "c"), "removed": ["mnist"], "bytes": 0}
    assert (tmp_path / "my-mnist" / "train-images-idx3-ubyte.gz").read_bytes() == b"data"  # only the link went
    assert not (tmp_path / "c").exists()  # it held mnistgen's entries only


def test_cache_that_is_a_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "thesis.tex").write_text("years of work")
    monkeypatch.setenv("MNISTGEN_DATA", str(tmp_path / "thesis.tex"))
    for args in (["cache", "clear"], ["cache"]):
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        assert (
            result.stderr
            == f"Error: the cache {tmp_path}/thesis.tex is a file, not a folder: set $MNISTGEN_DATA to a folder\n"
        )
        assert result.stdout == ""
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
