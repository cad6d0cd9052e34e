"""Pinned outputs: same seed, same model, same precision -> the same bytes, release after release.

The shipped default generator (`cvae`, with its card's sampling: mixture prior, temperature,
sharpening, verification by the classifier-c + classifier-d ensemble) and the 2-D tutorial model
write PNG, HDF5, NPZ and IDX at `--precision fp32`, so the pins hold on any CPU. A change that
alters a model or a default on purpose updates these pins in a commit that says so.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mnistgen.cli import app

runner = CliRunner()

# sha256 of the pixels, labels and latents (C order) and of the PNG files' bytes
PINS = {
    "cvae": {
        "images": "1e34c15d6db1f6beb6709210d55c39cc0c68ccac49955717cf95be4c357b8c6e",
        "labels": "5d92f75b550fd0dbbc10fc35ed2292aa1293fac137988bee25243a16865158a8",
        "latents": "22b4b99e85c8a9bc5362a323cb7eb262c4a0ba05b149c77a9538ede96301ddf3",
        "png": "453b6994d61351889cfa24807b42dd34eb408932f46ef270910a44ce5748b204",
    },
    "cvae-2d": {
        "images": "64e6adb619aafe9be888e2d52f576e54e608229bbc1542054ccd16860a567305",
        "labels": "5d92f75b550fd0dbbc10fc35ed2292aa1293fac137988bee25243a16865158a8",
        "latents": "8df4b78366f2efe93afd7e83c5a82af32af95d7819a6fa2d68117136f6b8c8fe",
        "png": "9093e410c9a349dcbc38e2a82a069970f1985d040fb070c3db08b3861364c4a5",
    },
}
DIGITS = "0,7"
COUNT = 3


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _generate(model: str, out: Path, *extra: str) -> None:
    args = ["generate", "--model", model, "-d", DIGITS, "-n", str(COUNT), "--seed", "11", "--precision", "fp32"]
    result = runner.invoke(app, [*args, "--out", str(out), "--quiet", *extra])
    assert result.exit_code == 0, result.output


def _png_digest(folder: Path) -> str:
    files = sorted(folder.glob("*/*.png"))
    assert len(files) == 2 * COUNT
    return _sha(b"".join(p.read_bytes() for p in files))


@pytest.mark.parametrize("model", sorted(PINS))
def test_outputs_are_pinned_across_formats(tmp_path, model):
    import h5py

    _generate(model, tmp_path / "s.h5")
    _generate(model, tmp_path / "s.npz")
    _generate(model, tmp_path / "png")
    _generate(model, tmp_path / "idx", "--format", "idx")
    with h5py.File(tmp_path / "s.h5") as f:
        arrays = {key: f[key][:] for key in ("images", "labels", "latents")}
    with np.load(tmp_path / "s.npz", allow_pickle=False) as f:
        for key, value in arrays.items():
            assert np.array_equal(f[key], value), key
        assert json.loads(str(f["attrs"]))["precision"] == "fp32"
    idx_images = gzip.decompress((tmp_path / "idx" / "train-images-idx3-ubyte.gz").read_bytes())
    assert idx_images[16:] == arrays["images"].tobytes()
    found = {key: _sha(np.ascontiguousarray(value).tobytes()) for key, value in arrays.items()}
    found["png"] = _png_digest(tmp_path / "png")
    assert found == PINS[model]
