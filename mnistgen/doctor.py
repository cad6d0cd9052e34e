"""`mnistgen doctor`: what this installation is, and a self-test that it works.

In the spirit of `paddle.utils.run_check()`, `huggingface-cli env` and `python -m
torch.utils.collect_env`: versions (mnistgen, Python, Paddle and how it was built), the CPU's
features, the CPUs and the device a job gets, the cache and its exports (checked against their
manifests), the shipped weights (checked against their sha256), the GPU (a CUDA build's test
convolution, or why it fails); then a few training steps of a tiny CVAE on synthetic data (the loss
must fall), the fast CPU decoder against eager decoding, and on a GPU, GPU decoding against CPU
decoding. A check that raises becomes a FAIL row and the report goes on. Returns plain data; the
CLI draws it.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from mnistgen import checkpoint, decoders, predictor, sample
from mnistgen.data import CACHE_FIX, cache_dir, cache_problem, one_hot
from mnistgen.runtime import (
    CPU_BUILD,
    NO_GPU,
    failure_reason,
    gpu_problem,
    import_paddle,
    keeps_device,
    on_device,
    select_device,
    usable_cpus,
)
from mnistgen.sampling import UNVERIFIED, Sampling, resolve_sampling
from mnistgen.version import __version__

OK, WARN, FAIL = "ok", "warn", "fail"
SELFTEST_IMAGES = 256  # synthetic training images: 4 steps of 64 per epoch
SELFTEST_EPOCHS = 3
SELFTEST_MODEL = "cvae"  # the shipped model whose decoders are compared
FP32_TOLERANCE = 2  # grey levels between the fp32 predictor and eager decoding
BF16_TOLERANCE = 4.0  # mean grey levels between the bf16 predictor and eager decoding
GPU_TOLERANCE = 2  # grey levels between GPU (eager) and CPU (predictor, fp32) decoding
REPORT_FIX = "run `mnistgen doctor --json` and attach its output to an issue"
HIDDEN_GPU_FIX = "check nvidia-smi and CUDA_VISIBLE_DEVICES; jobs run on the CPU meanwhile"
BROKEN_GPU_FIX = (
    "check the driver (nvidia-smi) and that CUDA and cuDNN match this Paddle's paddle_cuda and paddle_cudnn; "
    "jobs run on the CPU meanwhile"
)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def check(name: str, status: str, detail: str, fix: str = "") -> dict:
    return {"check": name, "status": status, "detail": detail, **({"fix": fix} if fix else {})}


def _cpu_flags() -> dict:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return {}
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    present = set(line.split(":", 1)[-1].split())
    return {flag: flag in present for flag in CPU_FLAGS}


def environment(paddle) -> dict:
    """Versions, build, CPU and device facts (no checks)."""
    from mnistgen.predictor import paddle_core, paddle_identity

    core = paddle_core(paddle)
    cuda = paddle.is_compiled_with_cuda()
    info = {
        "mnistgen": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "paddle": paddle.__version__,
        "paddle_commit": str(getattr(paddle.version, "commit", "")),
        "paddle_export_format": paddle_identity(paddle)["format"],
        "paddle_cuda": paddle.version.cuda() if cuda else None,
        "paddle_cudnn": paddle.version.cudnn() if cuda else None,
        "paddle_onednn": bool(core.is_compiled_with_mkldnn()),
        "paddle_mkl": str(paddle.version.mkl()) if hasattr(paddle.version, "mkl") else None,
        "cpu_flags": _cpu_flags(),
        "cpu_bf16": bool(core.supports_bfloat16()),
        "cpu_bf16_fast": bool(core.supports_bfloat16_fast_performance()),
        "cpus_total": os.cpu_count(),
        "cpus_usable": usable_cpus(),
    }
    info["device"] = select_device("auto" if gpu_problem(paddle) is None else "cpu")  # the GPU row says why
    return info


def gpu_check(paddle, env: dict) -> dict:
    """The GPU row: the GPU jobs get (its name and memory, also put in env["gpu"]), why a CUDA build
    has none that works, or that this Paddle is a CPU build."""
    problem = gpu_problem(paddle)
    if problem == CPU_BUILD:
        return check("GPU", OK, "no CUDA build: jobs run on the CPU")
    if problem:
        return check("GPU", WARN, problem, HIDDEN_GPU_FIX if problem == NO_GPU else BROKEN_GPU_FIX)
    props = paddle.device.cuda.get_device_properties(int(env["device"].partition(":")[2] or 0))
    env["gpu"] = {"name": props.name, "memory_mb": round(props.total_memory / 2**20)}
    return check("GPU", OK, f"{env['device']}: {props.name}, {env['gpu']['memory_mb']:,} MiB")


def guarded(name: str, rows: Callable[[], list[dict]]) -> list[dict]:
    """A check's rows, or one FAIL row named `name` with the exception it raised: the report goes on."""
    try:
        return rows()
    except Exception as exc:  # Paddle raises RuntimeError, OSError, ValueError... from C++
        return [check(name, FAIL, failure_reason(exc), REPORT_FIX)]


def cache_checks() -> list[dict]:
    from mnistgen.predictor import list_exports

    root = cache_dir()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0
    problem = cache_problem()
    rows = [
        check("cache", FAIL, problem, CACHE_FIX) if problem else check("cache", OK, f"{root} ({size / 2**20:.1f} MB)")
    ]
    for row in list_exports():
        name = f"export {row['name']}"
        if not row["this_paddle"]:
            rows.append(check(name, OK, f"unused by this Paddle ({row['status']}); `mnistgen cache clear` frees it"))
        elif row["status"] != "ok":
            rows.append(check(name, WARN, row["status"], "it is rebuilt on next use"))
        else:
            rows.append(check(name, OK, "matches its manifest"))
    return rows


def weights_checks() -> list[dict]:
    rows = []
    for path in sorted(checkpoint.shipped_dir().glob("*" + checkpoint.WEIGHTS_SUFFIX)):
        try:
            weights = checkpoint.inspect(str(path))
            rows.append(check(f"weights {path.stem}", OK, f"sha256 {weights.sha256[:12]} matches its card"))
        except Exception as exc:  # MnistgenError names what is wrong with the file
            rows.append(
                check(f"weights {path.stem}", FAIL, str(exc), "reinstall: pip install --force-reinstall mnistgen")
            )
    return rows


def synthetic_dataset(n: int = SELFTEST_IMAGES):
    """Digit-like synthetic images: label c is a bright bar at row 2c + 4 on noise, so a model can
    learn them in a few steps (no dataset needed)."""
    from mnistgen.data import Dataset, Split

    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 7, 4:24] = 255
    return Dataset(Split(images, labels), None, "synthetic")


def training_check(paddle) -> dict:
    from mnistgen import train
    from mnistgen.config import ModelConfig

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir, paddle.utils.unique_name.guard():
        options = train.TrainOptions(epochs=SELFTEST_EPOCHS, seed=0)
        trainer = train.Trainer(ModelConfig(kind="cvae", channels=8), synthetic_dataset(), options, Path(run_dir))
        losses = [trainer.train_epoch(epoch)["train_loss"] for epoch in range(SELFTEST_EPOCHS)]
    detail = f"loss {' -> '.join(f'{v:.1f}' for v in losses)} in {time.perf_counter() - started:.1f} s"
    if all(np.isfinite(losses)) and losses[-1] < losses[0]:
        return check("self-test: training", OK, detail)
    return check("self-test: training", FAIL, f"the loss does not fall: {detail}", REPORT_FIX)


def eager_row(name: str, note: str) -> dict:
    """The row of a CPU decoder that fell back to eager Paddle: the fast decoder is exported into the
    cache, so an unusable cache is named as the cause, with its fix; else the Paddle build is suspect."""
    problem = cache_problem()
    if problem:  # the decoder's note names it already when the export failed on the cache
        detail = note if problem in note else f"{problem}, so {note}"
        return check(name, WARN, detail, f"{CACHE_FIX}: the fast decoder is exported into it")
    return check(name, WARN, note, "reinstall Paddle (pip install --force-reinstall paddlepaddle)")


def decoder_checks(device: str) -> list[dict]:
    """The shipped model's first block of digit 3, decoded eagerly and by the predictor (fp32, and
    bf16 where the CPU is fast at it); on a GPU, eager GPU decoding against the CPU predictor."""
    weights = checkpoint.inspect(SELFTEST_MODEL)
    z = sample.latents(0, 3, 0, weights.config.latent)
    onehot = one_hot(np.full(sample.BLOCK, 3), weights.config.num_classes)
    sharpen = resolve_sampling(weights, UNVERIFIED).sharpen  # the card's, as generate uses
    rows, cpu = [], None
    with on_device("cpu"):
        eager = decoders.EagerDecoder(decoders.load_model(weights, sharpen))(z, onehot).astype(np.int16)
        for precision in ("fp32", "bf16") if predictor.fast_bf16() else ("fp32",):
            name = f"self-test: CPU decoder ({precision})"
            spec = Sampling(sharpen=sharpen, precision=precision)
            decoder = decoders.make_decoder(weights, "cpu", spec)
            if decoder.name != "predictor":
                note = predictor.decoder_note(decoder) or "eager by choice"
                rows.append(eager_row(name, note))
                continue
            out = decoder(z, onehot).astype(np.int16)
            cpu = out if precision == "fp32" else cpu
            diff = np.abs(out - eager)
            detail = f"max {diff.max()}, mean {diff.mean():.2f} grey levels from eager"
            good = diff.max() <= FP32_TOLERANCE if precision == "fp32" else diff.mean() <= BF16_TOLERANCE
            fix = "use --precision fp32" if precision == "bf16" else REPORT_FIX
            rows.append(check(name, OK if good else FAIL, detail, "" if good else fix))

    def gpu_rows() -> list[dict]:
        with on_device(device):
            gpu = decoders.EagerDecoder(decoders.load_model(weights, sharpen))(z, onehot).astype(np.int16)
        diff = np.abs(gpu - (cpu if cpu is not None else eager))
        good = diff.max() <= GPU_TOLERANCE
        detail = f"max {diff.max()}, mean {diff.mean():.2f} grey levels from the CPU"
        return [check("self-test: GPU decoder", OK if good else FAIL, detail, "" if good else REPORT_FIX)]

    return rows + (guarded("self-test: GPU decoder", gpu_rows) if device.startswith("gpu") else [])


@keeps_device
def diagnose(on_step: Callable[[str], None] = lambda step: None) -> dict:
    """Everything `mnistgen doctor` reports: {"environment": {...}, "checks": [...]}."""
    on_step("importing Paddle")
    paddle = import_paddle()
    env = environment(paddle)
    checks = [check("paddle", OK, f"{env['paddle']} ({env['paddle_export_format']} exports)")]
    if not env["paddle_onednn"]:
        checks.append(
            check("oneDNN", WARN, "this Paddle has no oneDNN: CPU decoding is slow", "pip install paddlepaddle")
        )
    checks += guarded("GPU", lambda: [gpu_check(paddle, env)])
    on_step("checking the cache and the shipped weights")
    checks += guarded("cache", cache_checks) + weights_checks()
    on_step("training a tiny CVAE for a few steps")
    checks += guarded("self-test: training", lambda: [training_check(paddle)])
    on_step("comparing decoders")
    checks += guarded("self-test: decoders", lambda: decoder_checks(env["device"]))
    return {"environment": env, "checks": checks}


def failures(report: dict) -> list[dict]:
    return [row for row in report["checks"] if row["status"] == FAIL]
