"""generate's formats, determinism across formats/counts/shards, resume, Ctrl-C, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen.cli import app
from mnistgen.config import Format

runner = CliRunner()


def _default_sigint():
    """A background shell (nohup, CI runners) starts children with SIGINT ignored, and Python
    keeps an inherited SIG_IGN: restore the default so the child gets a KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def gen(model, *args):
    result = runner.invoke(app, ["generate", "--model", str(model), "--quiet", *[str(a) for a in args]])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def png_arrays(out: Path, digits, count) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(out / str(d) / f"{i:05d}.png")) for d in digits for i in range(count)])


def test_hdf5_layout_and_same_pixels_as_png(tmp_path, tiny_cvae):
    import h5py

    summary = gen(tiny_cvae, "-d", "2,5", "-n", 300, "-o", tmp_path / "s.h5", "--seed", 9)
    assert summary["format"] == "hdf5" and summary["outputs"] == [str(tmp_path / "s.h5")]
    gen(tiny_cvae, "-d", "2,5", "-n", 300, "-o", tmp_path / "png", "--seed", 9)
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (600, 28, 28)
        assert f["labels"].dtype == np.uint8 and list(np.unique(f["labels"][:])) == [2, 5]
        assert f["latents"].dtype == np.float32 and f["latents"].shape == (600, 2)
        assert f["images"].compression == "gzip"
        # a random f["images"][i] decompresses its whole chunk: 128 images (0.1 MB), not 1,024 (~8x slower)
        assert f["images"].chunks == (128, 28, 28) and f["latents"].chunks == (128, 2)
        assert f.attrs["model_sha256"] == summary["model_sha256"] and f.attrs["seed"] == 9
        assert f.attrs["command"].startswith("mnistgen generate") and f.attrs["mnistgen_version"]
        images, latents = f["images"][:], f["latents"][:]
    assert np.array_equal(images, png_arrays(tmp_path / "png", [2, 5], 300))
    meta = [json.loads(line)["z"] for line in (tmp_path / "png" / "metadata.jsonl").read_text().splitlines()]
    assert np.allclose(np.array(meta), latents, atol=1e-6)
    assert not list(tmp_path.glob(".*.part"))


def test_npz_and_idx_hold_the_same_images(tmp_path, tiny_cvae):
    from mnistgen import sources

    gen(tiny_cvae, "-d", "all", "-n", 30, "-o", tmp_path / "a.npz", "--seed", 4)
    gen(tiny_cvae, "-d", "all", "-n", 30, "-o", tmp_path / "idx", "--format", "idx", "--seed", 4)
    npz = np.load(tmp_path / "a.npz")  # allow_pickle is False: nothing in it needs pickle
    assert json.loads(str(npz["attrs"]))["seed"] == 4
    assert npz["images"].shape == (300, 28, 28) and npz["labels"].tolist() == [d for d in range(10) for _ in range(30)]
    # the IDX pair reads with an MNIST loader (here mnistgen's own, which checks headers)
    loaded = sources.load(tmp_path / "idx")
    assert np.array_equal(loaded.train.images, npz["images"])
    assert np.array_equal(loaded.train.labels, npz["labels"])


def test_idx_files_are_the_same_bytes_each_time_and_name_themselves(tmp_path, tiny_cvae):
    import gzip

    for out in ("one", "two"):
        gen(tiny_cvae, "-d", "3", "-n", 5, "-o", tmp_path / out, "--format", "idx", "--seed", 4)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        first = (tmp_path / "one" / name).read_bytes()
        assert first == (tmp_path / "two" / name).read_bytes()  # no write time in the gzip header
        with gzip.GzipFile(fileobj=open(tmp_path / "one" / name, "rb")) as f:
            f.read(1)
            assert f.name.endswith(name) and f.mtime == 0
        assert first[10 : first.index(b"\0", 10)].decode() == name[: -len(".gz")]  # gunzip -N restores this name


def test_grid_preview(tmp_path, tiny_cvae):
    from PIL import Image

    gen(tiny_cvae, "-d", "all", "-n", 20, "-o", tmp_path / "grid.png", "--seed", 1, "--scale", 2)
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == ((20 * 30 - 2) * 2, (10 * 30 - 2) * 2)
        assert im.text["seed"] == "1" and len(im.text["model_sha256"]) == 64


def test_pixels_do_not_depend_on_count_or_shards(tmp_path, tiny_cvae):
    gen(tiny_cvae, "-d", "3,4", "-n", 700, "-o", tmp_path / "one", "--seed", 2)
    for i in range(3):
        gen(tiny_cvae, "-d", "3,4", "-n", 700, "-o", tmp_path / "sharded", "--seed", 2, "--shard", f"{i}/3")
    few = gen(tiny_cvae, "-d", "4", "-n", 10, "-o", tmp_path / "few", "--seed", 2)
    assert few["count"] == 10
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*.png")}
    sharded = {p.relative_to(tmp_path / "sharded"): p.read_bytes() for p in (tmp_path / "sharded").rglob("*.png")}
    assert len(one) == 1400 and one == sharded
    assert all(one[p.relative_to(tmp_path / "few")] == p.read_bytes() for p in (tmp_path / "few").rglob("*.png"))
    shard_meta = sorted((tmp_path / "sharded").glob("metadata.shard-*-of-00003.jsonl"))
    joined = "".join(p.read_text() for p in shard_meta)
    assert len(shard_meta) == 3 and joined == (tmp_path / "one" / "metadata.jsonl").read_text()


def test_hdf5_shards_concatenate_to_one_run(tmp_path, tiny_cvae):
    import h5py

    gen(tiny_cvae, "-d", "all", "-n", 50, "-o", tmp_path / "all.h5", "--seed", 3)
    parts = []
    for i in range(4):
        gen(tiny_cvae, "-d", "all", "-n", 50, "-o", tmp_path / "part.h5", "--seed", 3, "--shard", f"{i}/4")
        with h5py.File(tmp_path / f"part.shard-{i:05d}-of-00004.h5") as f:
            parts.append(f["images"][:])
    with h5py.File(tmp_path / "all.h5") as f:
        assert np.array_equal(np.concatenate(parts), f["images"][:])


def test_resume_writes_only_what_is_missing(tmp_path, tiny_cvae):
    out = tmp_path / "o"
    gen(tiny_cvae, "-d", "1,2", "-n", 600, "-o", out, "--seed", 8)

    def outputs():  # images and metadata; the manifest records the (resumed) command line
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "mnistgen.json"}

    before = outputs()
    for name in ("1/00007.png", "2/00599.png", "metadata.jsonl"):
        (out / name).unlink()
    untouched = out / "1" / "00300.png"
    stamp = untouched.stat().st_mtime_ns
    gen(tiny_cvae, "-d", "1,2", "-n", 600, "-o", out, "--seed", 8, "--resume")
    assert outputs() == before
    assert untouched.stat().st_mtime_ns == stamp


def test_force_replaces_only_what_generate_wrote(tmp_path, tiny_cvae):
    mine = tmp_path / "mine"  # a labelled folder of the user's own: class folders, no manifest
    for label in ("3", "7"):
        (mine / label).mkdir(parents=True)
        (mine / label / "a.png").write_bytes(b"user data")
    result = runner.invoke(app, ["generate", "--model", str(tiny_cvae), "-d", "3", "-n", 2, "-o", str(mine), "--force"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"Error: --out {mine} holds files that generate did not write (no mnistgen.json): --force replaces "
        "only generate's output; choose another directory"
    )
    assert sorted(p.read_bytes() for p in mine.rglob("*.png")) == [b"user data"] * 2

    theirs = tmp_path / "theirs.h5"
    theirs.write_bytes(b"not generate's")
    for flag in ("--force", "--resume"):
        result = runner.invoke(
            app, ["generate", "--model", str(tiny_cvae), "-d", "3", "-n", 2, "-o", str(theirs), flag]
        )
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == (
            f"Error: {theirs} was not written by mnistgen generate (no settings recorded in theirs.h5): "
            "choose another --out"
        )
        assert theirs.read_bytes() == b"not generate's"


def test_every_recorded_sampling_setting_is_checked_on_resume(tiny_classifier):
    """A setting Sampling records but RESUME_SETTINGS missed would let --resume mix two ways of drawing."""
    from mnistgen import checkpoint, records, sampling

    verified = sampling.Sampling(min_confidence=0.5, classifier=checkpoint.inspect(str(tiny_classifier)))
    assert set(verified.attrs()) == set(sampling.SAMPLING_KEYS) <= set(records.RESUME_SETTINGS)


@pytest.mark.parametrize("out", ["o", "o.h5", "o.npz", "o.tar", "o.png"])
def test_resume_refuses_another_jobs_output(tmp_path, tiny_cvae, out):
    out = tmp_path / out
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 8)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 8, "--resume")  # the same job: nothing to do
    result = runner.invoke(
        app, ["generate", "--model", str(tiny_cvae), "-d", "1,2", "-n", 3, "-o", str(out), "--seed", 9, "--resume"]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"Error: --resume: {out} was written with other settings: seed 8 (now 9); repeat its command to "
        "finish it, or pass --force to replace it"
    )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "mnistgen.json"} == {
        p: b for p, b in before.items() if p.name != "mnistgen.json"
    }
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 9, "--force")  # generate's own output: replaced


def files(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too) and its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["png", "idx"])
def test_a_failed_force_run_keeps_the_earlier_output(tmp_path, tiny_cvae, tiny_classifier, fmt):
    out = tmp_path / "o"
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--format", fmt, "--seed", 8)
    (out / "notes.txt").write_text("the user's own")
    before = files(out)
    result = runner.invoke(
        app,
        ["generate", "--model", str(tiny_cvae), "-d", "1,2", "-n", 3, "-o", str(out), "--format", fmt, "--seed", 9]
        + ["--force", "--min-confidence", "0.999", "--classifier", str(tiny_classifier), "--quiet"],
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: --min-confidence 0.999: only "), result.stderr
    assert files(out) == before  # images, metadata.jsonl and mnistgen.json as they were
    assert not list(out.glob(".*"))  # no staging folder or temporary left


def test_a_force_run_replaces_generates_output_and_keeps_the_users_files(tmp_path, tiny_cvae):
    out, fresh = tmp_path / "o", tmp_path / "fresh"
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 8)
    (out / "notes.txt").write_text("the user's own")
    gen(tiny_cvae, "-d", "3", "-n", 2, "-o", out, "--seed", 9, "--force")
    gen(tiny_cvae, "-d", "3", "-n", 2, "-o", fresh, "--seed", 9)
    replaced = files(out)
    assert replaced.pop(Path("notes.txt")) == b"the user's own"
    assert sorted(p.name for p in out.iterdir()) == ["3", "metadata.jsonl", "mnistgen.json", "notes.txt"]
    manifest = json.loads(replaced.pop(Path("mnistgen.json")))
    assert manifest["seed"] == 9 and manifest["labels"] == [3] and "--force" in manifest["command"]
    assert replaced == {p: b for p, b in files(fresh).items() if p.name != "mnistgen.json"}  # the same bytes


def test_a_killed_force_runs_leftovers_are_removed_or_named(tmp_path, tiny_cvae):
    from mnistgen import atomic
    from mnistgen.staging import ASIDE_NAME, STAGING_NAME

    out = tmp_path / "o"
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 8)
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()  # a finished process: its id names a writer that no longer runs
    tag = f"{dead.pid}-1{atomic.TEMP_SUFFIX}"
    staging = out / f".{STAGING_NAME}.{tag}"
    (staging / "1").mkdir(parents=True)  # killed while generating: the partial new output
    (staging / "1" / "00000.png").write_bytes(b"partial")
    before = {p: b for p, b in files(out).items() if p.name != "mnistgen.json"}
    elsewhere = out / f".metadata.jsonl.{dead.pid}-1-0123abcd{atomic.TEMP_SUFFIX}"  # another node's shard writing
    elsewhere.write_text("")
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 8, "--resume")
    assert not staging.exists() and elsewhere.exists()  # a process of another machine cannot be asked: kept
    elsewhere.unlink()
    assert {p: b for p, b in files(out).items() if p.name != "mnistgen.json"} == {
        p: b for p, b in before.items() if STAGING_NAME not in str(p)
    }

    aside = out / f".{ASIDE_NAME}.{tag}"  # killed while swapping: which entries are whose is not known
    (aside / "2").mkdir(parents=True)
    staging.mkdir()
    for flag in ("--force", "--resume"):
        result = runner.invoke(app, ["generate", "--model", str(tiny_cvae), "-d", "1,2", "-n", 3, "-o", str(out), flag])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == (
            f"Error: --out {out}: a --force run was killed while it replaced the output: the earlier output is "
            f"partly in {aside.name}, the new one partly in {staging.name}; move back the entries you want and "
            "delete both, then run again"
        )
    staging.rmdir()  # an aside folder alone is a finished swap's: removed
    gen(tiny_cvae, "-d", "1,2", "-n", 3, "-o", out, "--seed", 8, "--force")
    assert not aside.exists()

    fresh = tmp_path / "fresh"  # a --force run into a new folder, killed: only its staging folder is left
    (fresh / staging.name / "1").mkdir(parents=True)
    (fresh / staging.name / "mnistgen.json").write_text("{}")
    for flags in ((), ("--force",)):  # the folder counts as empty: either way the run writes it, and the leftover goes
        gen(tiny_cvae, "-d", "1", "-n", 2, "-o", fresh, "--seed", 8, *flags)
        assert sorted(p.name for p in fresh.iterdir()) == ["1", "metadata.jsonl", "mnistgen.json"]
        if not flags:
            shutil.rmtree(fresh)
            (fresh / staging.name).mkdir(parents=True)


def test_temperature_narrows_the_latents(tmp_path, tiny_cvae):
    import h5py

    gen(tiny_cvae, "-d", "0", "-n", 500, "-o", tmp_path / "t1.h5", "--seed", 1)
    gen(tiny_cvae, "-d", "0", "-n", 500, "-o", tmp_path / "t05.h5", "--seed", 1, "--temperature", 0.5)
    with h5py.File(tmp_path / "t1.h5") as a, h5py.File(tmp_path / "t05.h5") as b:
        assert np.allclose(b["latents"][:], 0.5 * a["latents"][:])


def test_ctrl_c_leaves_complete_files_and_resume_finishes(tmp_path, tiny_cvae):
    from PIL import Image

    out = tmp_path / "big"
    cmd = [
        sys.executable,
        "-m",
        "mnistgen",
        "generate",
        "-d",
        "all",
        "-n",
        2000,
        "-o",
        out,
        "--model",
        tiny_cvae,
        "--seed",
        6,
        "-q",
    ]
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("*/*.png"))) < 300:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert (
        stderr.strip().splitlines()[-1] == "Interrupted: every file already written is complete; finish with --resume."
    )
    assert "Traceback" not in stderr and stdout == ""
    written = list(out.glob("*/*.png"))
    assert 0 < len(written) < 20000
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    for path in written:
        with Image.open(path) as im:
            im.load()  # every file present is a whole PNG
    gen(tiny_cvae, "-d", "all", "-n", 2000, "-o", out, "--seed", 6, "--resume")
    assert len(list(out.glob("*/*.png"))) == 20000
    gen(tiny_cvae, "-d", "9", "-n", 2000, "-o", tmp_path / "nine", "--seed", 6)
    assert all((out / "9" / p.name).read_bytes() == p.read_bytes() for p in (tmp_path / "nine" / "9").iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard", "3/2"], "Error: Invalid value for --shard: '3/2': need 0 <= i < n, counting from 0"),
        (["--shard", "0/0"], "Error: Invalid value for --shard: '0/0': need 0 <= i < n"),
        (["--shard", "1-2"], "Error: Invalid value for --shard: '1-2' is not i/n"),
        (["--format", "gif"], "Error: Invalid value for '--format' / '-f': Value error, 'gif' is not one of"),
        (
            ["--force", "--resume"],
            "Error: Invalid value for --force/--resume: --force replaces, --resume keeps: choose one",
        ),
        (["--scale", "0"], "Error: Invalid value for '--scale': Input should be greater than or equal to 1"),
        (["--sharpen", "0.5"], "Error: Invalid value for '--sharpen': Input should be greater than or equal to 1"),
        (
            ["--precision", "fp16"],
            "Error: Invalid value for '--precision': Value error, 'fp16' is not one of 'auto', 'fp32', 'bf16'.",
        ),
    ],
)
def test_bad_generate_options(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


SCALE_UNREAD = (
    "Invalid value for --scale: --scale enlarges a grid picture: drop it, or write one (--format grid, or an --out "
    "ending in .png)\n"
)
UNKNOWN = "Invalid value for --model: unknown model 'nope'"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scale", "2"], SCALE_UNREAD),
        (["--scale", "3", "-o", "s.h5"], SCALE_UNREAD),
        (["--force", "--out", "-"],
         "Invalid value for --force: --out - streams a new tar and replaces no file: drop --force\n"),
        # read, so refused only for what follows (an unknown model or classifier), before anything loads
        (["--scale", "2", "-o", "g.png", "--model", "nope"], UNKNOWN),
        (["--scale", "1", "-o", "s.h5", "--model", "nope"], UNKNOWN),  # enlarges nothing: in every recorded command
        (["--scale", "2", "-f", "grid", "-o", "g", "--model", "nope"], UNKNOWN),
        (["--seed", "0", "--force", "-o", "s.tar", "--model", "nope"], UNKNOWN),
        (["--min-confidence", "0.5", "--classifier", "nope"], "Invalid value for --classifier: unknown model 'nope'"),
    ],
)  # fmt: skip
def test_options_generate_would_not_read_are_refused(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", *args])
    assert result.exit_code == 2, result.output
    assert f"Error: {message}" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "make, args, message",
    [
        (
            lambda t: (t / "f").write_text("x"),
            ["-o", "{t}/f/sub"],
            "Error: --out {t}/f/sub: {t}/f is a file, not a directory",
        ),
        (
            lambda t: (t / "d.h5").mkdir(),
            ["-o", "{t}/d.h5"],
            "Error: --out {t}/d.h5 is a directory: --format hdf5 writes one file; give a file name",
        ),
        (
            lambda t: (t / "x.npz").write_bytes(b"old"),
            ["-o", "{t}/x.npz"],
            "Error: {t}/x.npz already exists: pass --force to replace it, or choose another --out",
        ),
        (
            lambda t: None,
            ["-o", "{t}/g.png", "-n", "500"],
            "Error: --format grid draws --count images of each label in a row: use at most 200 (or, for one label, a "
            "multiple of 20 up to 4000, in rows of 20)",
        ),
        (
            lambda t: None,
            ["-o", "{t}/x.tar.gz"],
            "Error: --out {t}/x.tar.gz: generate writes no .gz files: name it .h5, .hdf5, .npz, .png (a grid), .tar, "
            "or pass --format png (or idx) to make a folder named x.tar.gz",
        ),
        (
            lambda t: None,
            ["-o", "{t}/x.h5", "--format", "tar"],
            "Error: --out {t}/x.h5: its suffix .h5 means --format hdf5, not tar: drop --format, or name it x.tar",
        ),
        (
            lambda t: None,
            ["-o", "{t}/x.png", "--format", "png"],
            "Error: --out {t}/x.png: its suffix .png means --format grid, not png: drop --format, or name the folder x",
        ),
    ],
)
def test_bad_outputs_change_nothing(tmp_path, tiny_cvae, make, args, message):
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = runner.invoke(app, ["generate", "--model", str(tiny_cvae), *[a.format(t=tmp_path) for a in args]])
    assert result.exit_code == 1, result.output
    assert result.stderr == message.format(t=tmp_path) + "\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out(tmp_path, tiny_cvae):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = runner.invoke(app, ["generate", "--model", str(tiny_cvae), "-o", str(locked / "o")])
    assert result.exit_code == 1
    assert result.stderr == f"Error: --out {locked / 'o'} is not writable: choose a directory you can write to\n"


def test_another_architecture_is_refused(tmp_path, tiny_cvae, tiny_vae):
    (tmp_path / "m.safetensors").write_bytes((tiny_vae / "model.safetensors").read_bytes())
    (tmp_path / "m.json").write_bytes((tiny_cvae / "model.json").read_bytes())
    result = runner.invoke(app, ["generate", "--model", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: {tmp_path / 'm.safetensors'} does not match its model card (cvae, latent 2)"
    )
    assert not (tmp_path / "o").exists()


def test_not_safetensors_is_refused(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"hello, I am not a tensor file at all")
    result = runner.invoke(app, ["generate", "--model", str(tmp_path / "junk.safetensors"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"Error: {tmp_path / 'junk.safetensors'} is not a safetensors file (or is truncated): train or download "
        "it again\n"
    )


def test_unlabelled_grid_wraps_into_rows_of_twenty(tmp_path, tiny_vae):
    from PIL import Image

    gen(tiny_vae, "-n", 200, "-o", tmp_path / "vae.png", "--seed", 1)
    with Image.open(tmp_path / "vae.png") as im:
        assert im.size == (20 * 30 - 2, 10 * 30 - 2)  # the tutorial's 10 x 20 sample figure


def test_fitted_prior_samples_from_the_card(tmp_path, tiny_cvae):
    import h5py

    from mnistgen import checkpoint

    card = checkpoint.inspect(str(tiny_cvae)).card
    fitted = card["latent_stats"]["fitted"]["4"]
    gen(tiny_cvae, "-d", "4", "-n", 2000, "-o", tmp_path / "f.h5", "--seed", 1, "--prior", "fitted")
    with h5py.File(tmp_path / "f.h5") as f:
        z = f["latents"][:]
        assert f.attrs["prior"] == "fitted"
    chol = np.array(fitted["cholesky"])
    assert np.allclose(z.mean(0), fitted["mean"], atol=0.1 * np.abs(chol).max() + 0.02)
    assert np.allclose(np.cov(z, rowvar=False), chol @ chol.T, atol=0.2 * (chol @ chol.T).max() + 0.02)


@pytest.mark.parametrize("prior", ["fitted", "mixture"])
def test_a_fitted_prior_needs_a_card_that_has_it(tmp_path, tiny_cvae, prior):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_cvae / f"model{suffix}", tmp_path / f"old{suffix}")
    card = json.loads((tmp_path / "old.json").read_text())
    del card["latent_stats"][prior]
    (tmp_path / "old.json").write_text(json.dumps(card))
    result = runner.invoke(
        app, ["generate", "--model", str(tmp_path / "old.safetensors"), "--prior", prior, "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --prior {prior}: model {card['name']}'s card has no {prior} prior; retrain it with this mnistgen, or "
        "use --prior standard\n"
    )


def _bf16_kernels() -> bool:
    from mnistgen.model import paddle

    return bool(paddle.base.core.supports_bfloat16())


@pytest.mark.skipif(not _bf16_kernels(), reason="this CPU has no bfloat16 oneDNN kernels")
def test_bf16_decoding_is_deterministic_and_within_a_few_levels_of_fp32(tmp_path, tiny_cvae):
    runs = {}
    for name, precision in (("a", "bf16"), ("b", "bf16"), ("c", "fp32")):
        summary = gen(
            tiny_cvae, "-d", "3,8", "-n", 300, "-o", tmp_path / f"{name}.npz", "--seed", 4, "--precision", precision
        )
        assert summary["precision"] == precision
        with np.load(tmp_path / f"{name}.npz") as f:
            runs[name] = f["images"].astype(int)
            assert json.loads(str(f["attrs"]))["precision"] == precision
    assert np.array_equal(runs["a"], runs["b"])
    diff = np.abs(runs["a"] - runs["c"])
    assert diff.max() <= 8 and diff.mean() < 0.5, (diff.max(), diff.mean())


def test_sharpen_scales_the_logits_and_pushes_pixels_to_black_and_white(tmp_path, tiny_cvae):
    from mnistgen import checkpoint, data, decoders
    from mnistgen.model import paddle, to_image

    runs = {}
    for factor in (1, 3):
        summary = gen(
            tiny_cvae, "-d", "4", "-n", 300, "-o", tmp_path / f"s{factor}.npz", "--seed", 2, "--sharpen", factor
        )
        assert summary["sharpen"] == factor
        with np.load(tmp_path / f"s{factor}.npz") as f:
            runs[factor] = f["images"]
    from_mid_grey = {k: float(np.abs(v.astype(float) - 127.5).mean()) for k, v in runs.items()}
    assert from_mid_grey[3] > 1.5 * from_mid_grey[1], from_mid_grey
    # the exact meaning: the same latents through the plain decoder, head multiplied by 3
    weights = checkpoint.inspect(str(tiny_cvae))
    plain, sharp = decoders.load_model(weights), decoders.EagerDecoder(decoders.load_model(weights, 3.0))
    z, onehot = np.random.default_rng(0).standard_normal((8, 2), dtype=np.float32), data.one_hot([4] * 8, 10)
    with paddle.no_grad():
        head = plain.decoder.head(paddle.to_tensor(z), paddle.to_tensor(onehot))
        expected = decoders.to_uint8(to_image(3.0 * head, weights.config.likelihood).numpy())
    assert np.abs(sharp(z, onehot).astype(int) - expected).max() <= 1


def test_truncation_redraws_long_latents_deterministically(tmp_path, tiny_cvae):
    from mnistgen import sample

    free = sample.block_latents(5, 3, 0, 2)
    cut = sample.block_latents(5, 3, 0, 2, truncation=1.0)
    inside = np.linalg.norm(free, axis=1) <= 1.0
    assert np.array_equal(cut[inside], free[inside])  # draws inside the radius are kept as they are
    assert (np.linalg.norm(cut, axis=1) <= 1.0).all() and not inside.all()
    assert np.array_equal(cut, sample.block_latents(5, 3, 0, 2, truncation=1.0))
    summary = gen(
        tiny_cvae, "-d", "3", "-n", 300, "-o", tmp_path / "t.npz", "--seed", 5, "--truncation", 1, "--temperature", 2
    )
    assert summary["truncation"] == 1
    with np.load(tmp_path / "t.npz") as f:
        radius = np.linalg.norm(f["latents"], axis=1)
    assert radius.max() <= 2.0 + 1e-5  # the radius applies before the temperature scales the draws


def test_a_truncation_radius_too_small_for_the_latent_is_refused(tmp_path, tiny_cvae):
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_cvae),
            "-q",
            "-d",
            "1",
            "-n",
            "5",
            "-o",
            str(tmp_path / "t.npz"),
            "--truncation",
            "0.001",
        ],
    )
    assert result.exit_code == 1, result.output
    assert (
        result.stderr.strip()
        == "Error: --truncation 0.001 keeps almost no draws of a 2-dimensional latent (their typical length is "
        "1.4): use a larger radius"
    )
    assert list(tmp_path.iterdir()) == []


def test_mixture_prior_samples_each_component_by_its_weight(tmp_path, tiny_cvae):
    import h5py

    from mnistgen import checkpoint

    mixture = checkpoint.inspect(str(tiny_cvae)).card["latent_stats"]["mixture"]["4"]
    gen(tiny_cvae, "-d", "4", "-n", 3000, "-o", tmp_path / "m.h5", "--seed", 1, "--prior", "mixture")
    with h5py.File(tmp_path / "m.h5") as f:
        z = f["latents"][:]
        assert f.attrs["prior"] == "mixture"
    weights, means, chols = (np.array(mixture[k]) for k in ("weights", "means", "cholesky"))
    assert np.isclose(weights.sum(), 1.0, atol=1e-4)
    mean = weights @ means  # the mixture's mean and covariance: sum_k w_k (C_k + m_k m_k^T) - m m^T
    second = np.einsum("k,kij->ij", weights, chols @ chols.transpose(0, 2, 1) + means[:, :, None] * means[:, None, :])
    cov = second - np.outer(mean, mean)
    scale = np.sqrt(np.diag(cov))
    assert np.allclose(z.mean(0), mean, atol=0.1 * scale.max())
    assert np.allclose(np.cov(z, rowvar=False), cov, atol=0.15 * cov.max())


def test_mixture_latents_do_not_depend_on_the_count(tmp_path, tiny_cvae):
    import h5py

    gen(tiny_cvae, "-d", "3", "-n", 300, "-o", tmp_path / "a.h5", "--seed", 5, "--prior", "mixture")
    gen(tiny_cvae, "-d", "3", "-n", 20, "-o", tmp_path / "b.h5", "--seed", 5, "--prior", "mixture")
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert np.array_equal(a["latents"][:20], b["latents"][:])
        assert np.array_equal(a["images"][:20], b["images"][:])


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m["4"].update(weights=[]),
        lambda m: m["4"].update(means=[[0.0]]),
        lambda m: m["4"].update(weights=[-1.0] * len(m["4"]["weights"])),
        lambda m: m["4"].update(weights=[1.0] * 10_000),
        lambda m: m["4"].pop("cholesky"),
    ],
    ids=["no-components", "wrong-shape", "negative-weights", "too-many", "missing-factor"],
)
def test_a_damaged_mixture_prior_is_refused(tmp_path, tiny_cvae, damage):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_cvae / f"model{suffix}", tmp_path / f"bad{suffix}")
    card = json.loads((tmp_path / "bad.json").read_text())
    damage(card["latent_stats"]["mixture"])
    (tmp_path / "bad.json").write_text(json.dumps(card))
    result = runner.invoke(
        app, ["generate", "--model", str(tmp_path / "bad.safetensors"), "--prior", "mixture", "-o", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: model card {tmp_path / 'bad.json'} has a damaged mixture prior (label 4): refit it with "
        "examples/refit_prior.py, or pass --prior fitted\n"
    )
    assert not (tmp_path / "o").exists()


def test_an_unconditional_models_files_hold_no_labels(tmp_path, tiny_vae):
    """A VAE's samples have no label: its HDF5 and NPZ files store none (they held zeros, which read
    back as one class "0"), and they read back as unlabelled."""
    import h5py

    from mnistgen import sources

    gen(tiny_vae, "-n", 5, "-o", tmp_path / "v.h5", "--seed", 1)
    gen(tiny_vae, "-n", 5, "-o", tmp_path / "v.npz", "--seed", 1)
    gen(tiny_vae, "-n", 5, "-o", tmp_path / "idx", "--format", "idx", "--seed", 1)  # its labels file: zeros
    with h5py.File(tmp_path / "v.h5") as f:
        assert sorted(f) == ["images", "latents"]
    assert sorted(np.load(tmp_path / "v.npz")) == ["attrs", "images", "latents"]
    # the IDX pair needs a labels file, but generate's record beside it says the zeros are no labels
    gen(tiny_vae, "-n", 4, "-o", tmp_path / "sh", "--format", "idx", "--seed", 1, "--shard", "0/2")
    (sharded,) = (tmp_path / "sh").glob("*images*")  # its record is mnistgen.shard-00000-of-00002.json
    for name in ("v.h5", "v.npz", "idx", "idx/train-images-idx3-ubyte.gz", sharded):
        found = sources.read([tmp_path / name])
        assert found.labels is None and found.images.shape == ((2 if name == sharded else 5), 28, 28)
    for data in (tmp_path / "v.h5", tmp_path / "idx"):
        refused = runner.invoke(app, ["train", "--model", "cvae", "--data", str(data), "-o", str(tmp_path / "r"), "-q"])
        assert refused.exit_code == 1, refused.output
        assert refused.stderr == (
            f"Error: {data} has no labels: only --model vae trains without them; pass labelled data for a cvae or "
            "the classifier\n"
        )


# -- one output holds one run's pixels; summaries say what the run did -------------------------------


def refused(*args) -> str:
    """Run generate expecting an Error; its one line."""
    result = runner.invoke(app, ["generate", "--quiet", *[str(a) for a in args]])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.stderr.strip()


def _edit_manifest(path: Path, **changes) -> None:
    """Make a manifest say what another run (another Paddle, another precision) would have recorded."""
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def test_resume_refuses_another_precision_and_bf16_from_another_paddle(tmp_path, tiny_cvae):
    from mnistgen import checkpoint, records
    from mnistgen import generate as jobs

    out = tmp_path / "mix"
    base = [tiny_cvae, "-d", "0,1", "-n", 300, "-o", out, "--seed", 5]
    made = gen(*base, "--precision", "fp32")
    assert made["precision"] == "fp32" and made["paddle_version"] and made["written"] == 600
    assert json.loads((out / "mnistgen.json").read_text())["paddle_version"] == made["paddle_version"]
    (out / "1" / "00299.png").unlink()
    assert refused("--model", *base, "--precision", "bf16", "--resume") == (
        f"Error: --resume: {out} was written with other settings: precision fp32 (now bf16); repeat its command to "
        "finish it, or pass --force to replace it"
    )
    assert not (out / "1" / "00299.png").exists()  # refused before the decoder was even built
    # fp32 pixels are pinned alike under every supported Paddle: another Paddle's fp32 output resumes
    _edit_manifest(out / "mnistgen.json", paddle_version="2.6.2")
    assert gen(*base, "--precision", "fp32", "--resume")["written"] == 1
    # bf16 pixels differ between Paddles: what the decoder runs is checked once it is built
    _edit_manifest(out / "mnistgen.json", precision="bf16", paddle_version="2.6.2")
    weights = checkpoint.inspect(str(tiny_cvae))
    job = jobs.plan_job(weights, [0, 1], 300, out, 5, resume=True)
    with pytest.raises(jobs.MnistgenError) as caught:
        records.check_decoding(job, "bf16", "3.3.1")
    assert str(caught.value) == (
        f"--resume: {out} was written with other settings: Paddle 2.6.2 (now 3.3.1: bf16 pixels differ between "
        "Paddle versions); repeat its command to finish it, or pass --force to replace it"
    )
    records.check_decoding(job, "bf16", "2.6.2")  # the same Paddle: the same pixels
    with pytest.raises(jobs.MnistgenError, match=r"precision bf16 \(now fp32\)"):
        records.check_decoding(job, "fp32", "2.6.2")


def test_shards_of_one_output_must_match(tmp_path, tiny_cvae):
    base = [tiny_cvae, "-d", "0", "-n", 10, "--precision", "fp32"]
    gen(*base, "-o", tmp_path / "s", "--seed", 2, "--shard", "0/2")
    assert refused("--model", *base, "-o", tmp_path / "s", "--seed", 3, "--shard", "1/2") == (
        f"Error: --shard 1/2: {tmp_path / 's' / 'mnistgen.shard-00000-of-00002.json'} of the same output was written "
        "with other settings: seed 2 (now 3); give every shard the same settings (its command is recorded there; "
        "without --seed each shard draws its own: pass one --seed to every shard), pass --force to replace the "
        "output's shards, or write this one elsewhere"
    )
    gen(*base, "-o", tmp_path / "s.h5", "--seed", 2, "--shard", "0/2")
    assert refused("--model", *base[:-1], "bf16", "-o", tmp_path / "s.h5", "--seed", 2, "--shard", "1/2") == (
        f"Error: --shard 1/2: {tmp_path / 's.shard-00000-of-00002.h5'} of the same output was written with other "
        "settings: precision fp32 (now bf16); give every shard the same settings (its command is recorded there), "
        "pass --force to replace the output's shards, or write this one elsewhere"
    )
    import h5py

    for i in range(2):  # the whole set again with other settings, shard by shard, as an array job re-runs it
        gen(*base, "-o", tmp_path / "s.h5", "--seed", 5, "--shard", f"{i}/2", "--force")
    with h5py.File(tmp_path / "s.shard-00001-of-00002.h5") as f:
        assert f.attrs["seed"] == 5
    # the Slurm array's --resume: a shard not yet begun writes beside the others, taking their seed
    later = gen(*base, "-o", tmp_path / "s", "--shard", "1/2", "--resume")
    assert later["seed"] == 2 and later["written"] == 5 and "--seed 2" in later["command"]
    assert refused("--model", *base, "-o", tmp_path / "s", "--resume") == (
        f"Error: --resume: {tmp_path / 's'} holds the files of shards 0/2, 1/2 of a run, not of a whole run: pass "
        "--shard i/2 to finish shard i, or --force to replace them"
    )


def test_a_run_without_seed_resumes_with_the_seed_it_used(tmp_path, tiny_cvae):
    import shlex

    out = tmp_path / "rs"
    first = gen(tiny_cvae, "-d", "3", "-n", 300, "-o", out)
    assert f"--seed {first['seed']}" in first["command"]  # the line repeats the run
    before = files(out)
    (out / "3" / "00100.png").unlink()
    again = gen(tiny_cvae, "-d", "3", "-n", 300, "-o", out, "--resume")
    assert again["seed"] == first["seed"] and again["written"] == 1 and again["already_present"] == 299
    assert {p: b for p, b in files(out).items() if p.name != "mnistgen.json"} == {
        p: b for p, b in before.items() if p.name != "mnistgen.json"
    }
    (out / "3" / "00200.png").unlink()
    repeated = shlex.split(first["command"])[1:] + ["--resume"]  # the recorded command, as a user repeats it
    result = runner.invoke(app, repeated)
    assert result.exit_code == 0, result.output
    assert (out / "3" / "00200.png").read_bytes() == before[Path("3/00200.png")]


def test_a_resumed_runs_summary_counts_only_what_it_wrote(tmp_path, tiny_cvae):
    base = ["cvae-2d", "-d", "2", "-n", 40, "--seed", 3, "--min-confidence", "0.5", "--classifier", "classifier"]
    made = gen(*base, "-o", tmp_path / "a.h5")
    assert made["written"] == 40 and 0 < made["acceptance_rate"] <= 1 and made["images_per_s"] > 0
    again = gen(*base, "-o", tmp_path / "a.h5", "--resume")  # complete: nothing decoded, nothing written
    assert (again["count"], again["written"], again["already_present"]) == (40, 0, 40)
    assert again["images_per_s"] is None and again["acceptance_rate"] == made["acceptance_rate"]  # as recorded
    plain = [tiny_cvae, "-d", "2", "-n", 40, "--seed", 3, "-o", tmp_path / "a.npz"]
    gen(*plain)
    assert "acceptance_rate" not in gen(*plain, "--resume")  # an unverified run has none
    gen(*base, "-o", tmp_path / "png")
    for name in ("00003.png", "00004.png"):
        (tmp_path / "png" / "2" / name).unlink()
    resumed = gen(*base, "-o", tmp_path / "png", "--resume")
    assert (resumed["count"], resumed["written"], resumed["already_present"]) == (40, 2, 38)


def test_resume_refuses_another_verifier(tmp_path, tiny_classifier):
    """The classifier that kept the samples is recorded (its sha256): a resume that would keep the rest
    by another one is refused, as another threshold is."""
    from mnistgen import checkpoint

    out = tmp_path / "v"
    base = ["cvae-2d", "-d", "2", "-n", 40, "--seed", 3, "--min-confidence", "0.5", "-o", out]
    made = gen(*base, "--classifier", "classifier")
    shipped = checkpoint.inspect("classifier").sha256
    assert made["verifier_sha256"] == [shipped]
    (out / "2" / "00039.png").unlink()
    message = refused("--model", *base, "--classifier", tiny_classifier, "--resume")
    mine = checkpoint.inspect(str(tiny_classifier)).sha256
    assert message.startswith(f"Error: --resume: {out} was written with other settings: verifier_sha256 ")
    assert f"(now ['{mine[:8]}" in message and not (out / "2" / "00039.png").exists()
    assert gen(*base, "--classifier", "classifier", "--resume")["written"] == 1


def test_a_name_ending_in_a_slash_is_a_folder_whatever_its_suffix(tmp_path, tiny_cvae):
    gen(tiny_cvae, "-d", "1", "-n", 2, "-o", f"{tmp_path / 'imgs.png'}/")  # not a grid named imgs.png
    assert (tmp_path / "imgs.png" / "1" / "00000.png").is_file()
    gen(tiny_cvae, "-d", "1", "-n", 2, "-o", f"{tmp_path / 'pics.h5'}/", "--format", "png")
    assert (tmp_path / "pics.h5" / "metadata.jsonl").is_file()
    assert refused("--model", tiny_cvae, "-n", 2, "-o", f"{tmp_path / 'new'}/", "--format", "hdf5") == (
        f"Error: --out {tmp_path / 'new'}/: a name ending in / is a folder, but --format hdf5 writes one file: drop "
        "the /, or use --format png or idx"
    )
    assert not (tmp_path / "new").exists()


def test_a_compressed_name_is_refused_for_a_file_format(tmp_path, tiny_cvae):
    """--out x.tar.gz --format tar wrote an uncompressed tar under a .gz name."""
    for name, fmt, plain in (("x.tar.gz", "tar", "x.tar"), ("x.h5.xz", "hdf5", "x.h5"), ("x.gz", "npz", "x.npz")):
        assert refused("--model", tiny_cvae, "-n", 2, "-o", tmp_path / name, "--format", fmt) == (
            f"Error: --out {tmp_path / name}: generate compresses no {fmt} output into {Path(name).suffix}: name it "
            f"{plain} and compress it afterwards (a stream: --out - | gzip)"
        )
        assert not (tmp_path / name).exists()


def test_an_unknown_suffix_is_refused_and_a_folder_named_so_is_asked_for(tmp_path, tiny_cvae):
    for name in ("x.zip", "x.jpg", "x.npy", "x.hdf", "x.idx"):
        suffix = name[1:]
        assert refused("--model", tiny_cvae, "-o", tmp_path / name) == (
            f"Error: --out {tmp_path / name}: generate writes no {suffix} files: name it .h5, .hdf5, .npz, .png (a "
            f"grid), .tar, or pass --format png (or idx) to make a folder named {name}"
        )
    assert list(tmp_path.iterdir()) == []
    gen(tiny_cvae, "-d", "1", "-n", 2, "-o", tmp_path / "x.zip", "--format", "png", "--seed", 1)
    gen(tiny_cvae, "-d", "1", "-n", 2, "-o", f"{tmp_path / 'v1.2'}/", "--seed", 1)  # a final "/": a folder
    gen(tiny_cvae, "-d", "1", "-n", 2, "-o", tmp_path / "v1.2", "--seed", 1, "--resume")  # an existing folder
    for folder in ("x.zip", "v1.2"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["1", "metadata.jsonl", "mnistgen.json"]


def test_two_runs_on_one_new_output_cannot_both_succeed(tmp_path, tiny_cvae):
    import h5py

    out = tmp_path / "cc.h5"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "mnistgen", "generate", "--model", str(tiny_cvae), "-d", "all", "-n", "300"]
            + ["--seed", str(seed), "-o", str(out), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (5, 6)
    ]
    outputs = [proc.communicate(timeout=120) for proc in runs]
    finished = [(proc.returncode, stdout, stderr) for proc, (stdout, stderr) in zip(runs, outputs)]
    assert sorted(code for code, _, _ in finished) == [0, 1], finished
    (winner,) = [json.loads(stdout) for code, stdout, _ in finished if code == 0]
    (loser,) = [stderr.strip().splitlines()[-1] for code, _, stderr in finished if code == 1]
    with h5py.File(out) as f:
        assert f.attrs["seed"] == winner["seed"]  # the summary that says so is true
    assert loser in (  # lost the race at the end, or planned once the winner's file was there
        f"Error: {out} was written by another run meanwhile: it was kept and this run's output removed; choose "
        "another --out, or pass --force to replace it",
        f"Error: {out} already exists: pass --force to replace it, or choose another --out",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["cc.h5"]  # the loser's temporary is gone


def test_a_new_outputs_name_is_taken_without_replacing(tmp_path):
    import errno

    from mnistgen import atomic

    dest = tmp_path / "f.bin"
    with pytest.raises(atomic.MnistgenError) as caught:
        with atomic.atomic_path(dest, replace=False) as tmp:
            tmp.write_bytes(b"mine")
            dest.write_bytes(b"theirs")  # another run finished first
    assert str(caught.value) == (
        f"{dest} was written by another run meanwhile: it was kept and this run's output removed; choose another "
        "--out, or pass --force to replace it"
    )
    assert dest.read_bytes() == b"theirs" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]

    def no_links(*args):  # a file system without hard links (FAT, some FUSE mounts)
        raise OSError(errno.EPERM, "Operation not permitted")

    fresh = tmp_path / "g.bin"
    original = atomic.os.link
    atomic.os.link = no_links
    try:
        atomic.write_bytes(fresh, b"new", replace=False)
        with pytest.raises(atomic.MnistgenError, match="was written by another run meanwhile"):
            atomic.write_bytes(fresh, b"again", replace=False)
    finally:
        atomic.os.link = original
    assert fresh.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "g.bin"]


def test_an_empty_shard_succeeds_and_writes_what_a_merge_expects(tmp_path, tiny_cvae):
    import h5py

    base = [tiny_cvae, "-d", "1", "-n", 2, "--seed", 1]
    result = runner.invoke(
        app, ["generate", "--model", *[str(a) for a in base], "-o", str(tmp_path / "s"), "-q"] + ["--shard", "0/3"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: --shard 0/3 gets no images out of 2: nothing to write\n"
    summary = json.loads(result.stdout)
    assert (summary["count"], summary["written"], summary["outputs"]) == (0, 0, [])
    assert not (tmp_path / "s").exists()  # nothing in the folder the other shards share
    for i in (1, 2):
        gen(*base, "-o", tmp_path / "s", "--shard", f"{i}/3")
    merged = "".join(p.read_text() for p in sorted((tmp_path / "s").glob("metadata.shard-*-of-00003.jsonl")))
    assert len(merged.splitlines()) == 2  # the README's cat still joins the metadata
    for name in ("t-{shard}.tar", "e.h5", "e.npz"):
        for i in range(3):
            gen(*base, "-o", tmp_path / name, "--shard", f"{i}/3")
    assert tarfile.open(tmp_path / "t-00000.tar").getnames() == []  # a valid, empty archive
    with h5py.File(tmp_path / "e.shard-00000-of-00003.h5") as f:
        assert f["images"].shape == (0, 28, 28) and f["latents"].shape[0] == 0 and f.attrs["seed"] == 1
    with np.load(tmp_path / "e.shard-00000-of-00003.npz") as f:
        assert f["images"].shape == (0, 28, 28)
    gen(*base, "-o", tmp_path / "e.h5", "--shard", "0/3", "--resume")  # complete: nothing to do


def test_a_job_that_cannot_fit_on_its_disk_is_refused_up_front(tmp_path, tiny_cvae):
    import shutil as sh

    from mnistgen import export

    out = tmp_path / "big.tar"  # a tar's blocks (3 KiB an image) overflow a disk within --count's range
    free = sh.disk_usage(tmp_path).free
    each = export.disk_bytes("tar", 1, 2, True)
    count = 2 * free // each // 10 + 1  # ten labels of this many: twice what is free
    if count > 10_000_000:
        pytest.skip("more free space than --count can fill")
    message = refused("--model", tiny_cvae, "-n", count, "-o", out)
    assert message.startswith(f"Error: --out {out}: {10 * count:,} images take at least ")
    assert message.endswith("free: free space, choose another --out, lower --count")
    assert f"({each:,} bytes each) but {tmp_path} has " in message and not out.exists()


def test_a_png_folder_with_more_files_than_free_inodes_is_refused(tmp_path, tiny_cvae):
    """The byte estimate leaves out the 4 KiB an ext4 file takes (btrfs keeps small files inline);
    where the file system counts inodes, a folder of more files than it has left is refused."""
    stats = os.statvfs(tmp_path)
    count = stats.f_favail // 10 + 1  # ten labels of this many: more files than inodes
    if not stats.f_files or count > 10_000_000:
        pytest.skip("the file system counts no inodes, or has more than --count can fill")
    out = tmp_path / "many"
    message = refused("--model", tiny_cvae, "-n", count, "-o", out)
    assert message.startswith(f"Error: --out {out}: {10 * count:,} PNG files, but the file system of {tmp_path} ")
    assert message.endswith(
        "more files (free inodes): free space, choose another --out, lower --count, or use --format hdf5 (one "
        "compressed file)"
    )
    assert not out.exists()


def test_disk_estimates_err_low(tmp_path, tiny_cvae):
    """What generate refuses by is a low estimate: real outputs hold at least that."""
    from mnistgen import export

    gen(tiny_cvae, "-d", "all", "-n", 30, "-o", tmp_path / "png", "--seed", 1)
    assert sum(p.stat().st_size for p in (tmp_path / "png").rglob("*.png")) >= 300 * export.PNG_FILE_BYTES
    metadata = (tmp_path / "png" / "metadata.jsonl").stat().st_size
    assert metadata >= 300 * (export.METADATA_LINE_BYTES + 2 * export.Z_TEXT_BYTES)
    for name, fmt in (("s.h5", "hdf5"), ("s.npz", "npz"), ("s.tar", "tar")):
        gen(tiny_cvae, "-d", "all", "-n", 30, "-o", tmp_path / name, "--seed", 1)
        assert (tmp_path / name).stat().st_size >= export.disk_bytes(fmt, 300, 2, True), fmt


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_has_its_disk_estimate_and_its_record(tmp_path, fmt):
    """The per-format tables end in a refusal, not in another format's branch: a new --format must
    be added to each of them."""
    from mnistgen import export, records

    assert export.disk_bytes(fmt.value, 10, 2, True) >= 0
    assert records.recorded_settings(tmp_path / "missing", fmt) is None  # nothing there: no record, no error
