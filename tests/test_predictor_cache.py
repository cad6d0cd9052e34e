"""The cache of exported predictors: keyed by Paddle version and format, checked against a manifest
before use, rebuilt (never loaded) when damaged, foreign or stale; safe when processes race."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen import checkpoint, data, decoders, predictor, sample, sampling
from mnistgen.cli import app

runner = CliRunner()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(data.CACHE_ENV, str(root))
    return root


def decode_block(model_dir: Path):
    """A fresh decoder (predictor on the CPU) and the first block of digit 3 it decodes."""
    decoder = decoders.make_decoder(checkpoint.inspect(str(model_dir)), "cpu", sampling.Sampling(precision="fp32"))
    return decoder, sample.block_batch(decoder, 5, 3, 0, 0, sample.BLOCK).images


def the_export(cache: Path) -> Path:
    (folder,) = [p for p in (cache / predictor.INFERENCE_SUBDIR).iterdir() if p.name.startswith("decoder-")]
    return folder


def program(folder: Path) -> Path:
    return predictor.program_file(folder / predictor.EXPORT_STEM, predictor.paddle_identity()["format"])


def test_an_export_is_keyed_by_paddle_version_and_format_and_carries_a_manifest(cache, tiny_cvae):
    decoder, _ = decode_block(tiny_cvae)
    assert decoder.name == "predictor"
    identity = predictor.paddle_identity()
    folder = the_export(cache)
    assert folder.name.endswith(f"-paddle{identity['paddle']}-{identity['format']}")
    manifest = json.loads((folder / predictor.MANIFEST).read_text())
    assert {k: manifest[k] for k in identity} == identity
    params = folder / (predictor.EXPORT_STEM + predictor.PARAMS_SUFFIX)
    assert manifest["files"][params.name] == {
        "bytes": params.stat().st_size,
        "sha256": hashlib.sha256(params.read_bytes()).hexdigest(),
    }
    assert program(folder).name in manifest["files"]
    assert predictor.check_export(folder, identity) is None


def damage_truncated_params(folder: Path) -> None:
    params = folder / (predictor.EXPORT_STEM + predictor.PARAMS_SUFFIX)
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])


def damage_missing_program(folder: Path) -> None:
    program(folder).unlink()


def damage_other_format(folder: Path) -> None:
    """The folder holds the other Paddle's files: its program format, a manifest saying so."""
    identity = predictor.paddle_identity()
    other = "pdmodel" if identity["format"] == "json" else "json"
    program(folder).rename(predictor.program_file(folder / predictor.EXPORT_STEM, other))
    (folder / predictor.MANIFEST).unlink()
    predictor.write_manifest(folder, {**identity, "paddle": "0.0.1", "format": other})


def damage_no_manifest(folder: Path) -> None:
    (folder / predictor.MANIFEST).unlink()


@pytest.mark.parametrize(
    "damage, problem",
    [
        (damage_truncated_params, "model.pdiparams has"),
        (damage_missing_program, "is missing"),
        (damage_other_format, "made by Paddle 0.0.1"),
        (damage_no_manifest, "no manifest"),
    ],
)
def test_a_damaged_or_foreign_export_is_rebuilt_not_loaded(cache, tiny_cvae, damage, problem):
    _, before = decode_block(tiny_cvae)
    folder = the_export(cache)
    damage(folder)
    assert problem in predictor.check_export(folder, predictor.paddle_identity())
    decoder, after = decode_block(tiny_cvae)
    assert decoder.name == "predictor"
    assert predictor.check_export(folder, predictor.paddle_identity()) is None
    np.testing.assert_array_equal(before, after)
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".") and p.is_dir()] == []


def test_exports_of_two_paddles_live_side_by_side(cache, tiny_cvae):
    decode_block(tiny_cvae)
    folder = the_export(cache)
    foreign = folder.with_name(folder.name.replace("-paddle", "-paddle0.0.1-x"))
    folder.rename(foreign)
    (foreign / predictor.MANIFEST).unlink()
    predictor.write_manifest(foreign, {**predictor.paddle_identity(), "paddle": "0.0.1"})
    decode_block(tiny_cvae)
    rows = {row["name"]: row for row in predictor.list_exports()}
    assert rows[foreign.name]["status"] == "ok" and not rows[foreign.name]["this_paddle"]
    assert rows[folder.name]["status"] == "ok" and rows[folder.name]["this_paddle"]


def test_a_whole_export_is_used_where_the_lock_cannot_be_taken(cache, tiny_cvae):
    """A read-only cache (filled by an admin for a cluster's users) fell back to eager decoding, 5x
    slower: the lock file's open failed before the whole export there was even looked at."""
    _, before = decode_block(tiny_cvae)
    folder = the_export(cache)
    (folder.parent / f".{folder.name}.lock").unlink()
    (folder.parent / f".{folder.name}.lock").mkdir()  # opening it to write fails, even for root
    decoder, after = decode_block(tiny_cvae)
    assert decoder.name == "predictor"
    np.testing.assert_array_equal(before, after)


RACER = textwrap.dedent(
    """
    import hashlib, sys
    from mnistgen import checkpoint, decoders, sample, sampling
    decoder = decoders.make_decoder(checkpoint.inspect(sys.argv[1]), "cpu", sampling.Sampling(precision="fp32"))
    images = sample.block_batch(decoder, 5, 3, 0, 0, sample.BLOCK).images
    print(decoder.name, hashlib.sha256(images.tobytes()).hexdigest())
    """
)


def test_two_processes_exporting_at_once_share_one_export(cache, tiny_cvae):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tiny_cvae)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    lines = [out.strip().splitlines()[-1] for out, _ in outputs]
    assert lines[0] == lines[1] and lines[0].startswith("predictor ")
    _, here = decode_block(tiny_cvae)
    assert lines[0].split()[1] == hashlib.sha256(here.tobytes()).hexdigest()
    assert [p.name for p in (cache / predictor.INFERENCE_SUBDIR).iterdir() if p.is_dir()] == [the_export(cache).name]


def test_generate_gives_identical_bytes_after_a_rebuild(cache, tmp_path, tiny_cvae):
    def generate(out: Path) -> dict:
        args = ["generate", "--model", str(tiny_cvae), "--digit", "2,7", "--count", "300", "--seed", "4"]
        result = runner.invoke(app, [*args, "--out", str(out), "--precision", "fp32", "--quiet"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = generate(tmp_path / "a.npz")
    damage_truncated_params(the_export(cache))
    second = generate(tmp_path / "b.npz")
    assert first["decoder"] == second["decoder"] == "predictor"
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(a["images"], b["images"])


def test_an_unavailable_predictor_is_named_once_on_stderr_and_in_the_summary(tmp_path, monkeypatch, tiny_cvae):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the cache lies under a file: the export cannot be written
    monkeypatch.setenv(data.CACHE_ENV, str(blocker / "cache"))
    out = tmp_path / "x.npz"
    result = runner.invoke(
        app, ["generate", "--model", str(tiny_cvae), "--digit", "1", "--count", "5", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["decoder"] == "eager"
    assert summary["decoder_note"] == (
        f"the fast CPU decoder is unavailable (the cache {blocker / 'cache'} cannot be made: {blocker} is a file: "
        "set $MNISTGEN_DATA to a folder you can write); decoding in eager Paddle, about 5x slower"
    )
    assert result.stderr.count("note: ") == 1
    assert result.stderr.strip() == f"note: {summary['decoder_note']}"


EXPORTER = textwrap.dedent(
    """
    import os, sys
    from mnistgen.runtime import import_paddle
    paddle = import_paddle()

    class Layer(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(4, 8)

        def forward(self, z):
            return self.fc(z)

    spec = [paddle.static.InputSpec([None, 4], "float32", "z")]
    paddle.jit.save(paddle.jit.to_static(Layer(), input_spec=spec, full_graph=True), sys.argv[1])
    print(sorted(os.listdir(os.path.dirname(sys.argv[1]))))
    """
)


def test_a_fresh_process_can_export_with_the_paddle_import_paddle_gives(tmp_path):
    """Paddle 2.6.2 under a pyenv Python segfaulted in inflateReset2 here (its bundled zlib)."""
    script = tmp_path / "export.py"
    script.write_text(EXPORTER)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out" / "model")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "model.pdiparams" in done.stdout


def test_the_encoder_skips_the_conv_activation_fusion_under_this_paddles_name():
    """The fusion that segfaults on the encoder's conv + leaky ReLU is named onednn in 3.x and mkldnn in
    2.6: deleting a name this Paddle does not have would silently keep the pass."""
    from paddle import inference

    config = inference.Config()
    config.enable_mkldnn()
    assert set(predictor.ENCODER_SKIPPED_PASSES) & set(config.pass_builder().all_passes())


def test_one_key_names_a_models_decoder_and_its_export(cache, tiny_cvae):
    """decoders.DecoderKey: api.Model's cache of decoders and the predictor cache's names, decided once."""
    import mnistgen

    assert [decoders.DecoderKey(s, "fp32").tag for s in (1.0, 1, 3.0, 2.5)] == ["", "", "-sharpen3", "-sharpen2.5"]
    close = [decoders.DecoderKey(s, "fp32").tag for s in (1.2345671, 1.2345674)]  # alike to :g's six digits
    assert close == ["-sharpen1.2345671", "-sharpen1.2345674"]
    model = mnistgen.load(str(tiny_cvae), device="cpu")
    plain = model._decoder(sampling.Sampling(precision="fp32"))
    assert model._decoder(sampling.Sampling(precision="fp32", temperature=0.5)) is plain  # not a decoder setting
    sharp = model._decoder(sampling.Sampling(precision="fp32", sharpen=3.0))
    assert sharp is not plain and sharp.name == plain.name == "predictor"
    identity = predictor.paddle_identity()
    assert sorted(p.name for p in (cache / predictor.INFERENCE_SUBDIR).iterdir() if p.is_dir()) == [
        f"decoder-{model.sha256[: predictor.SHA_PREFIX]}{tag}-paddle{identity['paddle']}-{identity['format']}"
        for tag in ("", "-sharpen3")
    ]
