"""generate --format tar (WebDataset shards, to a file or streamed to stdout) and the memory bound
that refuses outputs which cannot fit. Read back with real clients: Python's tarfile, GNU tar,
and webdataset / Hugging Face datasets where installed."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen.cli import app

runner = CliRunner()


def gen(model, *args):
    result = runner.invoke(app, ["generate", "--model", str(model), "--quiet", *[str(a) for a in args]])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def hdf5_arrays(path: Path):
    import h5py

    with h5py.File(path) as f:
        return f["images"][:], f["labels"][:], f["latents"][:]


def read_tar(source) -> dict:
    """key -> {"png": uint8 (28, 28), "cls": int, "json": dict}, in archive order."""
    from PIL import Image

    samples: dict = {}
    with tarfile.open(**source) as tar:
        for member in tar:
            key, ext = member.name.split(".", 1)
            payload = tar.extractfile(member).read()
            if ext == "png":
                with Image.open(io.BytesIO(payload)) as im:
                    assert im.mode == "L"
                    value = np.asarray(im)
            elif ext == "cls":
                value = int(payload.decode())
            else:
                value = json.loads(payload)
            samples.setdefault(key, {})[ext] = value
    return samples


def stream_command(model, *args):
    return [sys.executable, "-m", "mnistgen", "generate", "--model", str(model), "-q", *[str(a) for a in args]]


def test_tar_file_holds_the_hdf5_pixels_labels_and_latents(tmp_path, tiny_cvae):
    summary = gen(tiny_cvae, "-d", "2,5", "-n", 300, "-o", tmp_path / "s.tar", "--seed", 9)
    assert summary["format"] == "tar" and summary["outputs"] == [str(tmp_path / "s.tar")]
    gen(tiny_cvae, "-d", "2,5", "-n", 300, "-o", tmp_path / "s.h5", "--seed", 9)
    images, labels, latents = hdf5_arrays(tmp_path / "s.h5")
    samples = read_tar({"name": tmp_path / "s.tar"})
    assert list(samples) == [f"{i:06d}" for i in range(600)]  # keys: the global index, in order
    assert all(sorted(s) == ["cls", "json", "png"] for s in samples.values())
    assert np.array_equal(np.stack([s["png"] for s in samples.values()]), images)
    assert [s["cls"] for s in samples.values()] == labels.tolist() == [2] * 300 + [5] * 300
    assert [s["json"]["label"] for s in samples.values()] == labels.tolist()
    assert {s["json"]["seed"] for s in samples.values()} == {9}
    assert np.allclose(np.array([s["json"]["z"] for s in samples.values()]), latents, atol=1e-6)
    assert not list(tmp_path.glob(".*.part"))


def test_tar_streams_to_stdout_with_the_summary_on_stderr(tmp_path, tiny_cvae):
    gen(tiny_cvae, "-d", "7", "-n", 300, "-o", tmp_path / "s.tar", "--seed", 3)
    proc = subprocess.run(
        stream_command(tiny_cvae, "-d", 7, "-n", 300, "--format", "tar", "--out", "-", "--seed", 3),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == (tmp_path / "s.tar").read_bytes()  # the same bytes as the file
    summary = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    assert summary["outputs"] == ["-"] and summary["count"] == 300 and summary["labels"] == [7]
    samples = read_tar({"fileobj": io.BytesIO(proc.stdout), "mode": "r|"})  # read as a stream
    assert len(samples) == 300 and {s["cls"] for s in samples.values()} == {7}


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar program")
def test_tar_stream_pipes_into_tar(tiny_cvae):
    """The README's pipe: mnistgen generate ... --format tar --out - | tar -t"""
    producer = subprocess.Popen(
        stream_command(tiny_cvae, "-d", 4, "-n", 50, "--format", "tar", "--out", "-", "--seed", 1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    listing = subprocess.run(["tar", "-t"], stdin=producer.stdout, capture_output=True, text=True, timeout=300)
    producer.stdout.close()
    assert producer.wait(timeout=300) == 0
    names = listing.stdout.split()
    assert listing.returncode == 0 and len(names) == 150
    assert names[:3] == ["000000.cls", "000000.json", "000000.png"] and names[-1] == "000049.png"


def test_stream_refuses_a_terminal(tiny_cvae):
    import pty

    primary, secondary = pty.openpty()
    started = time.perf_counter()
    proc = subprocess.run(
        stream_command(tiny_cvae, "-d", 1, "-n", 10, "--out", "-"),
        stdout=secondary,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    os.close(secondary)
    os.close(primary)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error: --out - would write a binary tar to the terminal: give --out FILE, or pipe it "
        "(mnistgen generate ... --out - | tar -t)"
    )
    assert time.perf_counter() - started < 60


def test_tar_shards_have_globally_unique_keys_and_join_to_one_run(tmp_path, tiny_cvae):
    for i in range(3):
        gen(tiny_cvae, "-d", "all", "-n", 40, "-o", tmp_path / "synth-{shard}.tar", "--seed", 5, "--shard", f"{i}/3")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"synth-{i:05d}.tar" for i in range(3)]
    gen(tiny_cvae, "-d", "all", "-n", 40, "-o", tmp_path / "auto.tar", "--seed", 5, "--shard", "1/3")
    assert (tmp_path / "auto.shard-00001-of-00003.tar").read_bytes() == (tmp_path / "synth-00001.tar").read_bytes()
    gen(tiny_cvae, "-d", "all", "-n", 40, "-o", tmp_path / "whole.tar", "--seed", 5)
    whole = read_tar({"name": tmp_path / "whole.tar"})
    parts = [read_tar({"name": tmp_path / f"synth-{i:05d}.tar"}) for i in range(3)]
    keys = [k for part in parts for k in part]
    assert keys == list(whole) and len(set(keys)) == 400
    joined = {k: v for part in parts for k, v in part.items()}
    assert all(np.array_equal(joined[k]["png"], whole[k]["png"]) for k in whole)


def test_unconditional_tar_has_no_class_files(tmp_path, tiny_vae):
    gen(tiny_vae, "-n", 5, "-o", tmp_path / "u.tar", "--seed", 2)
    samples = read_tar({"name": tmp_path / "u.tar"})
    assert len(samples) == 5 and all(
        sorted(s) == ["json", "png"] and s["json"]["label"] is None for s in samples.values()
    )


def test_a_named_models_tar_carries_each_samples_class_name(tmp_path, tiny_cvae):
    """A tar has no manifest: a word-named model's class names reached no WebDataset reader."""
    run = tmp_path / "named"
    shutil.copytree(tiny_cvae, run)
    card = json.loads((run / "model.json").read_text())
    card["classes"] = [f"class-{d}" for d in range(10)]
    (run / "model.json").write_text(json.dumps(card))
    gen(run, "-d", "2,5", "-n", 3, "-o", tmp_path / "n.tar", "--seed", 1)
    samples = read_tar({"name": tmp_path / "n.tar"})
    assert [(s["cls"], s["json"]["class"]) for s in samples.values()] == [(2, "class-2")] * 3 + [(5, "class-5")] * 3
    assert list(samples["000000"]["json"]) == ["seed", "label", "class", "z"]


def test_stream_options_that_make_no_sense_are_refused(tmp_path, tiny_cvae):
    for args, message in [
        (
            ["--format", "npz"],
            "Error: --out - streams to standard output as --format tar only; --format npz needs --out",
        ),
        (["--resume"], "Error: --resume finishes files on disk; a stream is written whole: drop --resume"),
    ]:
        result = runner.invoke(app, ["generate", "--model", str(tiny_cvae), "-q", "-n", 3, "--out", "-", *args])
        assert result.exit_code == 1 and result.stderr.startswith(message), result.output


def test_webdataset_reads_the_shards(tmp_path, tiny_cvae):
    wds = pytest.importorskip("webdataset")
    for i in range(2):
        gen(tiny_cvae, "-d", "3,8", "-n", 20, "-o", tmp_path / "synth-{shard}.tar", "--seed", 4, "--shard", f"{i}/2")
    gen(tiny_cvae, "-d", "3,8", "-n", 20, "-o", tmp_path / "s.h5", "--seed", 4)
    images, labels, _ = hdf5_arrays(tmp_path / "s.h5")
    urls = str(tmp_path / "synth-{00000..00001}.tar")
    pipeline = wds.WebDataset(urls, shardshuffle=False).decode("l8").to_tuple("png", "cls", "json")
    rows = list(pipeline)
    assert len(rows) == 40
    assert np.array_equal(np.stack([r[0] for r in rows]), images)
    assert [r[1] for r in rows] == labels.tolist() and rows[0][2]["seed"] == 4


def test_hugging_face_datasets_loads_the_tar(tmp_path, tiny_cvae, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from datasets import load_dataset

    gen(tiny_cvae, "-d", "1,6", "-n", 15, "-o", tmp_path / "s.tar", "--seed", 8)
    gen(tiny_cvae, "-d", "1,6", "-n", 15, "-o", tmp_path / "s.h5", "--seed", 8)
    images, labels, _ = hdf5_arrays(tmp_path / "s.h5")
    ds = load_dataset("webdataset", data_files={"train": str(tmp_path / "s.tar")}, split="train")
    assert len(ds) == 30 and ds[0]["__key__"] == "000000"
    assert np.array_equal(np.stack([np.asarray(row["png"]) for row in ds]), images)
    assert [row["cls"] for row in ds] == labels.tolist()


# -- memory bounds ------------------------------------------------------------------------------


def test_an_npz_that_cannot_fit_is_refused_before_paddle(tmp_path):
    code = (
        "import sys\n"
        "from mnistgen.cli import main\n"
        "sys.argv = ['mnistgen', 'generate', '-d', 'all', '-n', '10000000', '--format', 'npz', "
        f"'--out', {str(tmp_path / 'big.npz')!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('paddle' in sys.modules, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MNISTGEN_MAX_MEMORY"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    error, imported = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and imported == "False"
    assert error.startswith("Error: --format npz holds all 100,000,000 images in memory until the end (")
    assert error.endswith(
        "set MNISTGEN_MAX_MEMORY to change it): use --format hdf5 or --format tar (to a file, or --out - for a pipe)"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_memory_bound_can_be_set(tmp_path, tiny_cvae, monkeypatch):
    monkeypatch.setenv("MNISTGEN_MAX_MEMORY", "100K")
    args = ["generate", "--model", str(tiny_cvae), "-q", "-d", "all", "-n", 20]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "g.png"), "--scale", "4"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --format grid draws one picture of 200 images (")
    assert "more than the 100.0 KiB an output may use (MNISTGEN_MAX_MEMORY): lower --count or --scale" in result.stderr
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "s.npz")])
    assert result.exit_code == 1 and "--format npz holds all 200 images" in result.stderr
    gen(tiny_cvae, "-d", "all", "-n", 20, "--out", tmp_path / "s.h5")  # streaming formats are not bounded
    gen(tiny_cvae, "-d", "all", "-n", 20, "--out", tmp_path / "s.tar")
    monkeypatch.setenv("MNISTGEN_MAX_MEMORY", "1G")
    gen(tiny_cvae, "-d", "all", "-n", 20, "--out", tmp_path / "s.npz")
    for size in ("lots", "inf", "1e999", "nan", "-5G", "0"):
        monkeypatch.setenv("MNISTGEN_MAX_MEMORY", size)
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "t.npz")])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"Error: MNISTGEN_MAX_MEMORY={size!r} is not a size: use a positive size such as 8G, 512M or a number "
            "of bytes\n"
        )
    assert not (tmp_path / "t.npz").exists()
