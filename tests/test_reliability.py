"""Reliability: a table of bad inputs, SIGKILL mid-write, file-size limits, concurrent shards.

Every bad input must exit non-zero with an `Error:` line that names the fix, print no
traceback, and leave the disk exactly as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnistgen.cli import app

runner = CliRunner()


def _default_sigint():
    """A background shell (nohup, CI runners) starts children with SIGINT ignored, and Python
    keeps an inherited SIG_IGN: restore the default so the child gets a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


CVAE, VAE, MNIST = "{cvae}", "{vae}", "{mnist}"

# (arguments, expected exit code, text the error line must contain). {t} is a scratch directory
# holding: file.txt, notes/ (non-empty), "dir with spaces/", "ünïcødé/", old.pdparams, cut.safetensors.
BAD_INPUTS = [
    (["generate", "--digit", "10"], 1, "--digit 10: model cvae knows labels 0-9 only"),
    (["generate", "--digit", "a"], 2, "'a' is not a comma-separated list"),
    (["generate", "--digit", ""], 2, "'' is not a comma-separated list"),
    (["generate", "--digit", "3,,4"], 2, "is not a comma-separated list"),
    (["generate", "--count", "0"], 2, "greater than or equal to 1"),
    (["generate", "--count", "-1"], 2, "greater than or equal to 1"),
    (["generate", "--count", "10x"], 2, "valid integer"),
    (["generate", "--count", "99999999999"], 2, "less than or equal to 10000000"),
    (["generate", "--shard", "3/2"], 2, "need 0 <= i < n"),
    (["generate", "--shard", "0/0"], 2, "need 0 <= i < n"),
    (["generate", "--shard", "-1/2"], 2, "is not i/n"),
    (["generate", "--format", "gif"], 2, "'gif' is not one of"),
    (["generate", "--temperature", "-1"], 2, "greater than or equal to 0"),
    (["generate", "--temperature", "nan"], 2, "--temperature"),
    (["generate", "--model", ""], 2, "--model is empty"),
    (["generate", "--model", "vae-9d"], 2, "unknown model 'vae-9d'"),
    (["generate", "--model", "{t}/old.pdparams"], 2, "is a pickle-based file"),
    (["generate", "--model", "{t}/cut.safetensors", "-o", "{t}/o"], 1, "is truncated or damaged"),
    (["generate", "--model", VAE, "--digit", "3", "-o", "{t}/o"], 1, "has no labels: drop --digit"),
    (["generate", "--model", CVAE, "-o", "{t}/file.txt", "--format", "png"], 1, "is a file: give a directory"),
    (["generate", "--model", CVAE, "-o", "{t}/file.txt"], 1, "generate writes no .txt files: name it .h5"),
    (["generate", "--model", CVAE, "-o", "{t}/x.h5", "--format", "tar"], 1, "its suffix .h5 means --format hdf5"),
    (["generate", "--model", CVAE, "-o", "{t}/file.txt/sub"], 1, "is a file, not a directory"),
    (["generate", "--model", CVAE, "-o", "{t}/notes"], 1, "is not empty: pass --force"),
    (
        [
            "generate",
            "--model",
            CVAE,
            "-o",
            "{t}/dir with spaces/x.h5",
            "--format",
            "npz",
            "-n",
            "5000",
            "--shard",
            "9/9",
        ],
        2,
        "need 0 <= i < n",
    ),
    (
        ["generate", "--model", CVAE, "-o", "{t}/ünïcødé", "--format", "hdf5"],
        1,
        "is a directory: --format hdf5 writes one file",
    ),
    (["generate", "--model", CVAE, "-o", "{t}/g.png", "-n", "201"], 1, "use at most 200"),
    (["interpolate", "--model", CVAE, "--points", "1,2;3"], 2, "is not a list of at least two points"),
    (["interpolate", "--model", CVAE, "--steps", "0"], 2, "greater than or equal to 1"),
    (["interpolate", "--model", CVAE, "--grid", "1"], 2, "greater than or equal to 2"),
    (
        ["interpolate", "--model", CVAE, "--images", "{t}/missing.png,{t}/file.txt", "-o", "{t}/w.gif"],
        1,
        "missing.png does not exist",
    ),
    (
        ["interpolate", "--model", CVAE, "--images", "{t}/file.txt,{t}/file.txt", "--digit", "1", "-o", "{t}/w.gif"],
        1,
        "is not a readable image",
    ),
    (
        ["interpolate", "--model", CVAE, "--grid", "3", "--digit", "12", "-o", "{t}/g2.png"],
        1,
        "--digit 12: model tiny-cvae knows labels 0-9 only",
    ),
    (["encode", "{t}/ünïcødé", "--model", CVAE], 1, "holds no image files"),
    (["encode", "{t}/notes", "--model", CVAE], 1, "is not an image file"),
    (["encode", "{t}/file.txt", "--model", CVAE, "--labels", "3,,4"], 2, "'3,,4' has an empty name"),
    # outputs are checked before the model loads: nothing is replaced unless --force, the option is named
    (
        ["interpolate", "--model", CVAE, "-o", "{t}/file.txt"],
        1,
        "file.txt: --to gif writes a GIF file; name it file.gif",
    ),
    (["interpolate", "--model", CVAE, "--to", "frames", "-o", "{t}/w.png"], 1, "--to frames writes a folder of PNGs"),
    (["interpolate", "--model", CVAE, "--grid", "3", "--to", "gif"], 2, "--grid draws one PNG picture: drop --to gif"),
    (
        ["interpolate", "--model", CVAE, "--to", "frames", "-o", "{t}/notes"],
        1,
        "notes is not empty: pass --force to replace its frames, or choose another directory",
    ),
    (
        ["interpolate", "--model", CVAE, "--to", "png", "-o", "{t}/nodir/w.png"],
        1,
        "nodir does not exist: create it, or choose another --out",
    ),
    (["interpolate", "--model", CVAE, "-o", "{t}/file.txt/w.gif"], 1, "file.txt is a file, not a directory"),
    (["interpolate", "--model", CVAE, "-o", "{t}/" + "w" * 300 + ".gif"], 1, "longer than the 255 bytes"),
    (["encode", MNIST, "--model", CVAE, "-o", "{t}/nodir/z.npy"], 1, "nodir does not exist: create it, or choose"),
    (["encode", MNIST, "--model", CVAE, "--plot", "{t}/nodir/p.png"], 1, "create it, or choose another --plot"),
    (
        ["encode", MNIST, "--model", CVAE, "--reconstruct", "{t}/file.txt"],
        1,
        "file.txt already exists: pass --force to replace it, or choose another --reconstruct",
    ),
    (
        ["encode", MNIST, "--model", CVAE, "--plot", "{t}/a.png", "--reconstruct", "{t}/a.png"],
        1,
        "--plot and --reconstruct both name",
    ),
    (["train", "--data", "{t}/dir with spaces", "--out", "{t}/run"], 1, "holds no image files and no MNIST IDX files"),
    (["train", "--data", "{t}/nope"], 2, "does not exist"),
    (["train", "--data", MNIST, "--out", "{t}/file.txt/run"], 1, "file.txt/run: "),
    (
        ["train", "--data", MNIST, "--out", "{t}/notes"],
        1,
        "is not empty and holds no checkpoint to resume: choose a new directory",
    ),
    (["train", "--data", MNIST, "--out", "{t}/fresh", "--resume"], 1, "holds no checkpoint"),
    (["train", "--data", MNIST, "--lr", "0"], 2, "--lr"),
    (["train", "--data", MNIST, "--latent", "1000000000"], 2, "less than or equal to 512"),
    (["train", "--data", MNIST, "--batch-size", "0"], 2, "greater than or equal to 1"),
    (["train", "--data", MNIST, "--indices", "5,-3"], 2, "is not a comma-separated list"),
    (["train", "--data", MNIST, "--indices", "99999", "--out", "{t}/run2"], 1, "--indices 99999 is out of range"),
    (
        ["train", "--data", "{t}/file.txt", "--out", "{t}/run3"],
        1,
        "is not an IDX, HDF5 (.mat, .h5) or NPZ file: pass an MNIST IDX directory",
    ),
    (["models", "show", "no-such-model"], 2, "unknown model 'no-such-model'"),
]


def _scratch(root: Path, tiny_cvae: Path) -> None:
    (root / "file.txt").write_text("not an image")
    (root / "notes").mkdir()
    (root / "notes" / "keep.dat").write_text("precious")
    (root / "dir with spaces").mkdir()
    (root / "ünïcødé").mkdir()
    (root / "old.pdparams").write_bytes(b"\x80\x04pickle")
    (root / "cut.safetensors").write_bytes((tiny_cvae / "model.safetensors").read_bytes()[:4000])
    (root / "cut.json").write_bytes((tiny_cvae / "model.json").read_bytes())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_table_is_large_enough():
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize("args, code, text", BAD_INPUTS, ids=[" ".join(a[:3]) for a, _, _ in BAD_INPUTS])
def test_bad_input(tmp_path, monkeypatch, tiny_cvae, tiny_vae, mnist_dir, args, code, text):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _scratch(scratch, tiny_cvae)
    monkeypatch.chdir(scratch)
    before = _snapshot(scratch)
    subs = {"{t}": str(scratch), CVAE: str(tiny_cvae), VAE: str(tiny_vae), MNIST: str(mnist_dir)}
    argv = []
    for arg in args:
        for key, value in subs.items():
            arg = arg.replace(key, value)
        argv.append(arg)
    result = runner.invoke(app, argv)
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and text in errors[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert _snapshot(scratch) == before


def _start(args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "mnistgen", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kwargs,
    )


def _wait_for(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline and not predicate():
        time.sleep(0.02)
    assert predicate(), "timed out"


def test_sigkill_mid_generate_then_resume_is_bit_exact(tmp_path, tiny_cvae):
    from PIL import Image

    base = ["generate", "-d", "all", "-n", 1500, "--model", tiny_cvae, "--seed", 21, "-q"]
    proc = _start(base + ["-o", tmp_path / "killed"])
    _wait_for(lambda: len(list((tmp_path / "killed").glob("*/*.png"))) > 500)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for path in (tmp_path / "killed").glob("*/*.png"):  # every PNG present is whole
        with Image.open(path) as im:
            im.load()
    assert (
        subprocess.run(
            [sys.executable, "-m", "mnistgen", *map(str, base + ["-o", tmp_path / "killed", "--resume"])],
            capture_output=True,
        ).returncode
        == 0
    )
    assert (
        subprocess.run(
            [sys.executable, "-m", "mnistgen", *map(str, base + ["-o", tmp_path / "straight"])], capture_output=True
        ).returncode
        == 0
    )

    def files(root):
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and p.name != "mnistgen.json"
        }

    assert files(tmp_path / "killed") == files(tmp_path / "straight")
    assert not list((tmp_path / "killed").rglob("*.part"))


def test_sigkill_mid_train_then_resume_is_bit_exact(tmp_path, mnist_dir):
    base = [
        "train",
        "--model",
        "cvae",
        "--no-classifier",
        "--channels",
        4,
        "--data",
        mnist_dir,
        "--limit",
        640,
        "--epochs",
        3,
        "--seed",
        5,
        "-q",
    ]
    proc = _start(base + ["--out", tmp_path / "killed"])
    _wait_for(lambda: (tmp_path / "killed" / "metrics.jsonl").exists())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = len((tmp_path / "killed" / "metrics.jsonl").read_text().splitlines())
    assert done < 3
    assert (
        subprocess.run(
            [sys.executable, "-m", "mnistgen", *map(str, base + ["--out", tmp_path / "killed", "--resume"])],
            capture_output=True,
        ).returncode
        == 0
    )
    assert (
        subprocess.run(
            [sys.executable, "-m", "mnistgen", *map(str, base + ["--out", tmp_path / "straight"])], capture_output=True
        ).returncode
        == 0
    )
    killed = (tmp_path / "killed" / "model.safetensors").read_bytes()
    assert killed == (tmp_path / "straight" / "model.safetensors").read_bytes()


def test_sigint_during_training_keeps_the_last_epoch(tmp_path, mnist_dir):
    proc = _start(
        ["train", "--model", "vae", "--channels", 4, "--data", mnist_dir, "--epochs", 50, "--out", tmp_path / "r", "-q"]
    )
    _wait_for(lambda: (tmp_path / "r" / "metrics.jsonl").exists())
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # once -2 (an escaped KeyboardInterrupt?) on a loaded machine
    assert (
        stderr.strip().splitlines()[-1]
        == f"Interrupted: kept the last finished epoch in {tmp_path / 'r'}; continue with --resume."
    )
    state = json.loads((tmp_path / "r" / "train_state.json").read_text())
    assert state["epoch"] >= 1 and (tmp_path / "r" / "model.safetensors").is_file()


def test_sigterm_unwinds_as_ctrl_c_does(tmp_path, tiny_cvae):
    """timeout, Slurm's time limit and docker stop send SIGTERM: Paddle's handler printed a C++ stack
    to stdout and left the partial file; the job now removes it and says so, exit 143."""
    out = tmp_path / "big.h5"
    proc = _start(["generate", "-d", "all", "-n", 100_000, "--model", tiny_cvae, "-o", out, "-q"])
    _wait_for(lambda: any(tmp_path.glob(".big.h5.*.part")))
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "Interrupted: no hdf5 output was written (it appears only when complete); run the command again."
    )
    assert list(tmp_path.iterdir()) == []


def _signal_held(proc, signum: int) -> bool:
    """Whether the process's main thread blocks `signum` (Linux /proc): the CLI holds it as it starts."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return False
    blocked = next((line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), "0")
    return bool(int(blocked, 16) >> (signum - 1) & 1)


def _paddle_loading(proc) -> bool:
    """Whether Paddle's C++ core is mapped into the process (Linux /proc): its import has begun."""
    try:
        return "libpaddle" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's state in /proc")
@pytest.mark.parametrize(
    "signum, when",
    [(signal.SIGTERM, "starting"), (signal.SIGTERM, "importing Paddle"), (signal.SIGINT, "importing Paddle")],
)
def test_a_signal_while_the_command_starts_is_one_interrupted_line(tiny_cvae, signum, when):
    """A SIGTERM or Ctrl-C in a command's first second, while the CLI and Paddle import, met Paddle's
    C++ handler (its stack on stdout, into the tar stream), broke the import ("PaddlePaddle is not
    installed"), or ended in a traceback or with 130 for SIGTERM. It is held until Paddle is whole,
    then handled as anywhere else."""
    proc = _start(["generate", "-d", 7, "-n", 50, "--model", tiny_cvae, "--out", "-", "-q"])
    ready = _signal_held if when == "starting" else (lambda proc, signum: _paddle_loading(proc))
    _wait_for(lambda: ready(proc, signum) or proc.poll() is not None)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert (proc.returncode, stdout, stderr) == (
        128 + signum,
        "",
        "Interrupted: the tar stream on stdout is incomplete; run the command again.\n",
    )


@pytest.fixture
def closed_pipe():
    """The write end of a pipe whose reader has gone (`| head` once it has read enough)."""
    read, write = os.pipe()
    os.close(read)
    yield write
    os.close(write)


def _run_into(stdout, args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mnistgen", *map(str, args)]
    return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300)


def test_a_summary_or_listing_into_a_closed_pipe_exits_141_quietly(tmp_path, tiny_cvae, closed_pipe):
    """The work is done when the summary is written: `generate ... | true` kept its complete file but
    said "cannot write: Broken pipe; free space or choose another --out", and `models | true` exited 1."""
    out = tmp_path / "bp.h5"
    done = _run_into(closed_pipe, ["generate", "-d", 7, "-n", 20, "--model", tiny_cvae, "-o", out, "-q"])
    assert (done.returncode, done.stderr) == (141, "")
    import h5py

    with h5py.File(out) as f:
        assert f["images"].shape == (20, 28, 28)
    listing = _run_into(closed_pipe, ["models", "--json"])
    assert (listing.returncode, listing.stderr) == (141, "")


@pytest.mark.parametrize(
    "into, error",
    [
        (
            "full",
            "cannot write to standard output: No space left on device; free space where it goes, or send it elsewhere",
        ),
        ("closed", "the reader closed standard output before the CSV ended: what it read is incomplete"),
    ],
)
def test_encode_csv_that_cannot_be_written_is_an_error(mnist_dir, closed_pipe, into, error):
    """The CSV is the data: a full disk (or /dev/full) exited 0 with a truncated CSV, and so did `| head`."""
    if into == "full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    args = ["encode", mnist_dir / "t10k-images-idx3-ubyte.gz", "--model", "vae-2d", "--limit", 50, "-q"]
    with open("/dev/full", "w") if into == "full" else contextlib.nullcontext(closed_pipe) as stdout:
        done = _run_into(stdout, args)
    assert (done.returncode, done.stderr) == (1, f"Error: {error}\n")


@pytest.mark.parametrize(
    "into, error",
    [
        ("closed", "the reader closed the pipe before the stream ended: the tar it got is incomplete"),
        (
            "full",
            "cannot write the tar stream to standard output: No space left on device; what went out is incomplete: "
            "free space where it goes, or send it elsewhere",
        ),
    ],
)
def test_a_stream_that_cannot_be_written_is_an_error(tiny_cvae, closed_pipe, into, error):
    """With --out - stdout is the data: the README's Error line, saying what happened (a full disk said
    "choose another --out (partial files were removed)", which a stream has neither of)."""
    if into == "full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") if into == "full" else contextlib.nullcontext(closed_pipe) as stdout:
        done = _run_into(stdout, ["generate", "-d", 7, "-n", 20, "--model", tiny_cvae, "--out", "-", "-q"])
    assert (done.returncode, done.stderr) == (1, f"Error: {error}\n")


def test_a_stream_past_a_file_size_limit_is_the_streams_error(tmp_path, tiny_cvae):
    """`--out - > file` under `ulimit -f`: the tar writer's closing flush failed again, and that
    second error hid the first, so the line said "choose another --out (partial files were removed)"."""
    job = f"generate -d all -n 20 --model {tiny_cvae} --out - -q > {tmp_path / 's.tar'}"
    proc = subprocess.run(
        ["bash", "-c", f"ulimit -f 64; exec {sys.executable} -m mnistgen {job}"], capture_output=True, text=True
    )
    assert (proc.returncode, proc.stderr) == (
        1,
        "Error: cannot write the tar stream to standard output: File too large; what went out is incomplete: "
        "free space where it goes, or send it elsewhere\n",
    )


def test_a_home_whose_cache_paddle_cannot_create_is_one_line(tmp_path):
    """Paddle's import creates ~/.cache/paddle/dataset: a ~/.cache that is a file (or another user's)
    stopped every command with "cannot write ...; choose another --out", whatever the command."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").write_text("")
    out = tmp_path / "x.h5"
    args = [sys.executable, "-m", "mnistgen", "generate", "-d", "7", "-n", "2", "--model", "cvae-2d", "-o", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(home)})
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "Error: PaddlePaddle cannot be imported: its import creates ~/.cache/paddle/dataset and fails on "
        f"{home}/.cache/paddle (Not a directory): make {home}/.cache a folder you can write, or set HOME to one\n",
    )
    assert not out.exists()


def test_a_program_using_the_library_keeps_its_own_sigterm_handling():
    """Only the CLI turns SIGTERM into an unwinding Interrupted: a host program keeps the default
    (or its own handler) after mnistgen imports Paddle, which takes SIGTERM for itself."""
    code = (
        "import signal, mnistgen; mnistgen.load('cvae-2d').decode([[0.0, 0.0]], [3]); "
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "True"


@pytest.mark.parametrize("name", ["big.npz", "big.h5", "idx", "z.h5", "z.npy"])
def test_file_size_limit_gives_an_error_and_no_partial_file(tmp_path, tiny_cvae, mnist_dir, name):
    fmt = "--format idx" if name == "idx" else ""
    job = f"generate -d all -n 2000 --model {tiny_cvae} -o {tmp_path / name} {fmt} --seed 1 -q"
    blocks = 64  # of 1 KiB: ulimit -f
    if name.startswith("z."):  # encode's 1,000 latents (16 KB as .npy; HDF5 crashed at exit past the limit)
        job = f"encode {mnist_dir / 'train-images-idx3-ubyte.gz'} --model vae-2d -o {tmp_path / name} -q"
        blocks = 8
    cmd = f"ulimit -f {blocks}; exec {sys.executable} -m mnistgen {job}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write"), proc.stderr
    if name == "idx":  # the manifest is written last: no manifest without its IDX files
        assert list((tmp_path / "idx").iterdir()) == []
        return
    assert list(tmp_path.iterdir()) == []


def test_a_png_folder_past_a_size_limit_names_the_file_and_resume(tmp_path, tiny_cvae):
    """A PNG folder keeps its whole images: the error said "cannot write: File too large; ... (partial files
    were removed)", naming no file and not the --resume that finishes the job."""
    out = tmp_path / "pngs"
    job = f"generate -d 3 -n 300 --model {tiny_cvae} -o {out} --seed 1 -q"
    proc = subprocess.run(
        ["bash", "-c", f"ulimit -f 8; exec {sys.executable} -m mnistgen {job}"], capture_output=True, text=True
    )
    assert (proc.returncode, proc.stderr) == (
        1,
        f"Error: cannot write ({out}/metadata.jsonl): File too large; free space, then finish with --resume "
        "(every image already written is complete), or choose another --out\n",
    )
    resumed = runner.invoke(app, [*job.split(), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 300


def test_two_shards_into_one_directory_at_once(tmp_path, tiny_cvae):
    out = tmp_path / "shared"
    base = ["generate", "-d", "all", "-n", 300, "--model", tiny_cvae, "--seed", 4, "-q", "-o", out]
    procs = [_start(base + ["--shard", f"{i}/2"]) for i in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    single = tmp_path / "single"
    assert runner.invoke(app, [str(a) for a in base[:-1]] + [str(single)]).exit_code == 0
    pngs = sorted(p.relative_to(out) for p in out.glob("*/*.png"))
    assert pngs == sorted(p.relative_to(single) for p in single.glob("*/*.png")) and len(pngs) == 3000
    assert all((out / p).read_bytes() == (single / p).read_bytes() for p in pngs)
    joined = "".join(p.read_text() for p in sorted(out.glob("metadata.shard-*.jsonl")))
    assert joined == (single / "metadata.jsonl").read_text()


def test_interpolate_replaces_only_with_force_and_leaves_no_stale_frames(tmp_path, tiny_cvae):
    keep = tmp_path / "keep.gif"  # the user's own file, named as a walk would be
    keep.write_text("precious")
    walk = ["interpolate", "--model", str(tiny_cvae), "--digits", "3,8", "-q"]
    refused = runner.invoke(app, [*walk, "-o", str(keep)])
    assert refused.exit_code == 1 and keep.read_text() == "precious"
    assert refused.stderr == f"Error: {keep} already exists: pass --force to replace it, or choose another --out\n"
    assert runner.invoke(app, [*walk, "-o", str(keep), "--force"]).exit_code == 0
    assert keep.read_bytes().startswith(b"GIF8")
    frames = tmp_path / "fr"
    assert runner.invoke(app, [*walk, "--to", "frames", "-o", str(frames), "--steps", "8"]).exit_code == 0
    assert len(list(frames.iterdir())) == 16
    result = runner.invoke(app, [*walk, "--to", "frames", "-o", str(frames), "--steps", "2", "--force"])
    assert result.exit_code == 0 and json.loads(result.stdout)["frames"] == 4
    assert sorted(p.name for p in frames.iterdir()) == [f"frame-000{i}.png" for i in range(4)]


def test_encode_refuses_to_replace_without_force(tmp_path, tiny_cvae, mnist_dir):
    out = tmp_path / "z.csv"
    out.write_text("precious")
    encode = ["encode", str(mnist_dir), "--model", str(tiny_cvae), "--limit", "5", "-o", str(out)]
    refused = runner.invoke(app, encode)
    assert refused.exit_code == 1 and out.read_text() == "precious"
    assert refused.stderr == f"Error: {out} already exists: pass --force to replace it, or choose another --out\n"
    assert runner.invoke(app, [*encode, "--force"]).exit_code == 0
    assert out.read_text().startswith("source,label,mean_0")


def test_outputs_never_replace_or_join_the_inputs_even_with_force(tmp_path, tiny_cvae, tiny_vae):
    """--force replaces an earlier output, never the data being read, nor writes into its folder."""
    run_gen = ["generate", "--model", str(tiny_cvae), "-d", "3", "-n", 2, "--seed", 1, "-q"]
    assert runner.invoke(app, [*run_gen, "-o", str(tmp_path / "s.h5")]).exit_code == 0
    assert runner.invoke(app, [*run_gen, "-o", str(tmp_path / "pics")]).exit_code == 0
    data, pics = tmp_path / "s.h5", tmp_path / "pics"
    before = data.read_bytes(), sorted(pics.rglob("*"))
    for argv, message in [
        (["encode", str(data), "--model", str(tiny_cvae), "-o", str(data)], f"--out {data} is one of the inputs"),
        (["encode", str(pics), "--model", str(tiny_vae), "--plot", str(pics / "3" / "p.png")], f"is inside {pics}"),
        (["interpolate", "--model", str(tiny_vae), "--images", str(pics), "-o", str(pics / "w.gif")], f"inside {pics}"),
        (
            ["interpolate", "--model", str(tiny_vae), "--images", str(pics / "3"), "--to", "frames", "-o", str(pics)],
            f"--out {pics} holds {pics / '3'}",
        ),
    ]:
        result = runner.invoke(app, [*argv, "--force"])
        assert result.exit_code == 1, result.output
        assert message in result.stderr and result.stderr.endswith(": write it elsewhere\n")
    assert (data.read_bytes(), sorted(pics.rglob("*"))) == before


def test_encode_of_a_file_name_that_is_not_utf8(tmp_path, tiny_cvae):
    from PIL import Image

    folder = tmp_path / "uni" / "3"
    folder.mkdir(parents=True)
    Image.new("L", (28, 28)).save(os.path.join(os.fsencode(folder), b"bad\xffname.png"), format="PNG")
    for name in ("u.csv", "u.h5"):
        result = runner.invoke(
            app, ["encode", str(tmp_path / "uni"), "--model", str(tiny_cvae), "-o", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    assert "/3/bad\\xffname.png,3," in (tmp_path / "u.csv").read_text(encoding="utf-8")
    result = runner.invoke(app, ["encode", str(tmp_path / "uni"), "--model", str(tiny_cvae)])
    assert result.exit_code == 0 and "bad\\xffname.png" in result.stdout


def test_generate_into_an_hdf5_file_name_that_is_not_utf8(tmp_path, tiny_cvae):
    """HDF5 attributes are UTF-8: recording the command line of `--out $'bad\\xff.h5'` ended in a
    traceback. The name's bytes are kept, read back as the same string, so --resume still matches."""
    import h5py

    out = tmp_path / os.fsdecode(b"bad\xffname.h5")
    args = ["generate", "--model", str(tiny_cvae), "-d", "3", "-n", "2", "-o", str(out), "--seed", "1", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f"{out.name}' --model" in f.attrs["command"]  # quoted: the name needs it
    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["already_present"] == 2


def test_a_name_that_fits_is_written_however_long(tmp_path, tiny_cvae):
    out = tmp_path / ("a" * 246 + ".npz")  # 250 bytes: its temporary name is shortened to fit
    result = runner.invoke(app, ["generate", "--model", str(tiny_cvae), "-d", "3", "-n", "2", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_a_ctrl_c_held_through_a_swap_says_what_is_on_disk_after_it():
    """generate --force swaps its new output in with a few renames that hold a Ctrl-C: delivered
    after them, it must say the new output is in (the earlier message said the old one was kept)."""
    from mnistgen import atomic

    # a run started in the background (CI's) ignores SIGINT from the start: Ctrl-C as at a terminal
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(atomic.Interrupted) as caught:
            with atomic.deferred_interrupt(done="the new output is in o, complete"):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)  # the handler runs, and holds it
        assert caught.value.note == "the new output is in o, complete"
        with pytest.raises(KeyboardInterrupt) as plain:
            with atomic.deferred_interrupt():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
        assert not isinstance(plain.value, atomic.Interrupted)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignored before: ignored after the held step too
        with atomic.deferred_interrupt(done="the new output is in o, complete"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_sigterm_is_held_through_a_swap_as_ctrl_c_is():
    """A SIGTERM in the middle of --force's renames hid the old output and dropped the new one:
    it is held like Ctrl-C, then says the new output is in, and exits 143."""
    from mnistgen import atomic, runtime

    before = signal.signal(signal.SIGTERM, runtime.terminate)  # as the CLI sets it
    try:
        renamed = []
        with pytest.raises(atomic.Interrupted) as caught:
            with atomic.deferred_interrupt(done="the new output is in o, complete"):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)
                renamed.append("the last rename")  # the held step runs to its end
        assert renamed and caught.value.note == "the new output is in o, complete"
        assert caught.value.exit_code == 143 and signal.getsignal(signal.SIGTERM) is runtime.terminate
    finally:
        signal.signal(signal.SIGTERM, before)
