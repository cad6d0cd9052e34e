"""Paddle Inference on the CPU: export a layer once into the cache, run it with oneDNN.

Knows nothing about what the layer computes: `sample` runs the decoder through it, `classifier`
the classifier. An export is keyed by the caller (weights sha256 plus anything that changes the
graph) and written atomically, so concurrent jobs share it. precision "bf16" runs the
convolutions and dense layers in bfloat16, which CPUs with AMX do several times faster.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from mnistgen.errors import MnistgenError
from mnistgen.runtime import import_paddle

INFERENCE_SUBDIR = "inference"  # exported predictors, in the cache
EXPORT_STEM = "model"
SHA_PREFIX = 16  # hex digits of the weights' sha256 naming an export
SPLIT = 128  # rows per predictor run: a 256-image block runs as two halves whose activations stay in cache
PRECISIONS = ("auto", "fp32", "bf16")
# oneDNN's bf16 placement keeps an op in bf16 only between bf16 neighbours; the fused add+leaky-ReLU
# it would build has no bf16 kernel and would strand the decoder's second conv-transpose and last
# conv in fp32, so that fusion is left out: the add runs in bf16, the leaky ReLU beside it.
BF16_SKIPPED_PASSES = ("elementwise_act_onednn_fuse_pass",)


def fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions fast (AMX or AVX-512 BF16), as Paddle reports it."""
    paddle = import_paddle()
    return bool(paddle.base.core.supports_bfloat16_fast_performance())


def resolve_precision(precision: str) -> str:
    """`auto`: bf16 where the CPU has fast bfloat16, else fp32."""
    if precision not in PRECISIONS:
        raise MnistgenError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if fast_bf16() else "fp32"
    if precision == "bf16":
        paddle = import_paddle()
        if not paddle.base.core.supports_bfloat16():
            raise MnistgenError(
                "--precision bf16: this CPU has no bfloat16 support in oneDNN; use --precision fp32 (or auto)"
            )
    return precision


def exported(kind: str, sha256: str, build: Callable[[], tuple], tag: str = "") -> Path:
    """The cached export of `kind` for the weights `sha256` (+ `tag` for anything else that changes
    the graph), made on first use: build() returns the layer and its input specs, which
    `paddle.jit.save` writes into a temporary folder renamed into place."""
    from mnistgen.data import cache_dir

    paddle = import_paddle()
    folder = cache_dir() / INFERENCE_SUBDIR / f"{kind}-{sha256[:SHA_PREFIX]}{tag}"
    stem = folder / EXPORT_STEM
    if (folder / (EXPORT_STEM + ".pdiparams")).is_file():
        return stem
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    try:
        layer, specs = build()
        static = paddle.jit.to_static(layer, input_spec=specs, full_graph=True)
        paddle.jit.save(static, str(tmp / EXPORT_STEM))
        try:
            tmp.rename(folder)  # atomic: another process may have won the race, which is fine
        except OSError:
            if not (folder / (EXPORT_STEM + ".pdiparams")).is_file():  # a damaged leftover, not a winner
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stem


class Predictor:
    """A Paddle Inference predictor on an export: arrays in (by input name), one array out. Rows
    always run in the same runs of SPLIT, so a row's result depends only on its run, not on how
    many rows come in one call."""

    def __init__(self, stem: Path, threads: int, precision: str = "fp32"):
        from paddle import inference

        self.precision = precision
        cfg = inference.Config(str(stem) + ".json", str(stem) + ".pdiparams")
        cfg.disable_gpu()
        cfg.set_cpu_math_library_num_threads(threads)
        cfg.enable_mkldnn()
        if precision == "bf16":
            cfg.enable_mkldnn_bfloat16()
            for name in BF16_SKIPPED_PASSES:
                cfg.delete_pass(name)
        cfg.disable_glog_info()
        self.predictor = inference.create_predictor(cfg)
        self.inputs = {n: self.predictor.get_input_handle(n) for n in self.predictor.get_input_names()}
        self.output = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def _run(self, arrays: dict) -> np.ndarray:
        for name, array in arrays.items():
            self.inputs[name].copy_from_cpu(np.ascontiguousarray(array, dtype=np.float32))
        self.predictor.run()
        return self.output.copy_to_cpu()

    def __call__(self, **arrays: np.ndarray) -> np.ndarray:
        rows = len(next(iter(arrays.values())))
        return np.concatenate(
            [self._run({name: a[i : i + SPLIT] for name, a in arrays.items()}) for i in range(0, rows, SPLIT)]
        )
