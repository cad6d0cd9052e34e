"""Paddle Inference: export a layer once into the cache, check it, run it (oneDNN on the CPU).

Knows nothing about what the layer computes: the decoders run the generator's decoder through it,
`classifier` the classifier. An export is keyed by the caller (weights sha256 plus anything that
changes the graph), by the Paddle version and by the format that version's `paddle.jit.save`
writes: 3.x writes the PIR program `model.json`, 2.6 the ProgramDesc `model.pdmodel`, both beside
`model.pdiparams`. Feeding one Paddle the other's program crashes the process in C++, and so can a
truncated parameter file, so every export carries a manifest (Paddle version and commit, format,
each file's size and sha256) written last, and is checked against it before a predictor sees it: a
damaged, foreign or stale export is rebuilt, never loaded. Exports are built in a temporary folder
and renamed into place under a lock file, so concurrent jobs share one export safely; a whole export is
used without the lock, so a read-only cache that holds it serves it.

precision "bf16" runs the convolutions and dense layers in bfloat16 (oneDNN, both Paddles), which
CPUs with AMX or AVX-512 BF16 do faster. On a GPU mnistgen runs eager Paddle in fp32 instead: no
predictor is made there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from mnistgen import untrusted
from mnistgen.checkpoint import sha256_of
from mnistgen.errors import MnistgenError
from mnistgen.runtime import import_paddle

INFERENCE_SUBDIR = "inference"  # exported predictors, in the cache
EXPORT_STEM = "model"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
PROGRAM_SUFFIXES = {"json": ".json", "pdmodel": ".pdmodel"}  # export format -> program file suffix
PARAMS_SUFFIX = ".pdiparams"
SHA_PREFIX = 16  # hex digits of the weights' sha256 naming an export
SPLIT = 128  # rows per predictor run: a 256-image block runs as two halves whose activations stay in cache
PRECISIONS = ("auto", "fp32", "bf16")
# oneDNN's bf16 placement keeps an op in bf16 only between bf16 neighbours; the fused add+leaky-ReLU
# it would build has no bf16 kernel and would strand the decoder's second conv-transpose and last
# conv in fp32, so that fusion is left out: the add runs in bf16, the leaky ReLU beside it.
BF16_SKIPPED_PASSES = ("elementwise_act_onednn_fuse_pass",)
# Paddle 3.3.1's oneDNN fusion of a conv2d with a leaky ReLU segfaults while building the fused op
# (an encoder's conv + leaky ReLU hits it; the decoder's conv-transposes and classifier do not), so graphs
# with an encoder are run without it (2.6 names the pass mkldnn; an unknown name is no error).
ENCODER_SKIPPED_PASSES = ("conv_activation_onednn_fuse_pass", "conv_activation_mkldnn_fuse_pass")
SLOWDOWN = "about 5x slower"  # eager decoding against the predictor on a CPU (see the README's figures)


def paddle_core(paddle):
    """Paddle's C++ core module: `paddle.base.core` (2.6 and 3.x), `paddle.fluid.core` before 2.6."""
    base = getattr(paddle, "base", None) or paddle.fluid
    return base.core


def fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions fast (AMX or AVX-512 BF16), as Paddle reports it."""
    return bool(paddle_core(import_paddle()).supports_bfloat16_fast_performance())


def resolve_precision(precision: str) -> str:
    """`auto`: bf16 where the CPU has fast bfloat16, else fp32."""
    if precision not in PRECISIONS:
        raise MnistgenError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if fast_bf16() else "fp32"
    if precision == "bf16" and not paddle_core(import_paddle()).supports_bfloat16():
        raise MnistgenError(
            "--precision bf16: this CPU has no bfloat16 support in oneDNN; use --precision fp32 (or auto)"
        )
    return precision


def fallback_note(reason: str) -> str:
    """What a user is told when the predictor is unavailable and decoding runs in eager Paddle."""
    return f"the fast CPU decoder is unavailable ({reason}); decoding in eager Paddle, {SLOWDOWN}"


def decoder_note(decoder) -> Optional[str]:
    """The note for a decoder that fell back to eager Paddle (None when it did not)."""
    reason = getattr(decoder, "fallback_reason", None)
    return fallback_note(reason) if reason else None


# -- the cache of exports ---------------------------------------------------------------------


def export_format(paddle) -> str:
    """What this Paddle's `paddle.jit.save` writes: "json" (the PIR program, 3.x) or "pdmodel" (2.6)."""
    use_pir = getattr(paddle.framework, "use_pir_api", None)
    return "json" if use_pir is not None and use_pir() else "pdmodel"


def paddle_identity(paddle=None) -> dict:
    """The Paddle an export belongs to: version, build commit and export format."""
    paddle = paddle or import_paddle()
    return {
        "paddle": paddle.__version__,
        "commit": str(getattr(paddle.version, "commit", "")),
        "format": export_format(paddle),
    }


def program_file(stem: Path, fmt: str) -> Path:
    return Path(str(stem) + PROGRAM_SUFFIXES[fmt])


def export_folder(kind: str, sha256: str, tag: str, identity: dict) -> Path:
    from mnistgen.data import cache_dir

    name = f"{kind}-{sha256[:SHA_PREFIX]}{tag}-paddle{identity['paddle']}-{identity['format']}"
    return cache_dir() / INFERENCE_SUBDIR / name


def write_manifest(folder: Path, identity: dict) -> None:
    """Record what `folder` holds (called once the export is complete, before it is renamed into place)."""
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"manifest_version": MANIFEST_VERSION, **identity, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def _read_manifest(folder: Path):
    """(the manifest, its files, its format), or why the export's manifest cannot be used: a FIFO
    or device in its place would block the read, so it is damage, rebuilt like any other."""
    path = folder / MANIFEST
    kind = untrusted.special_kind(path)
    if kind:
        return f"the manifest is {kind}"
    try:
        manifest = untrusted.loads(path.read_text())
        files, fmt = dict(manifest["files"]), manifest["format"]
    except FileNotFoundError:
        return "no manifest" if folder.is_dir() else "missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "unreadable manifest"
    plain = all(isinstance(entry, dict) and Path(name).name == name for name, entry in files.items())
    if not (plain and isinstance(fmt, str)):  # a file named ../x would be hashed outside the export
        return "unreadable manifest"
    return manifest, files, fmt


def check_export(folder: Path, identity: Optional[dict] = None) -> Optional[str]:
    """None when the export in `folder` is whole and unchanged since it was made (and, given
    `identity`, made by that Paddle in its format); otherwise why not, in a few words."""
    found = _read_manifest(folder)
    if isinstance(found, str):
        return found
    manifest, files, fmt = found
    if identity is not None:
        made, wanted = (f"Paddle {d.get('paddle')} ({d.get('format')})" for d in (manifest, identity))
        if made != wanted or manifest.get("commit") != identity["commit"]:
            return f"made by {made}, this is {wanted}"
    needed = {EXPORT_STEM + PROGRAM_SUFFIXES.get(fmt, ".?"), EXPORT_STEM + PARAMS_SUFFIX}
    if not needed <= files.keys():
        return f"the manifest lists no {' or '.join(sorted(needed - files.keys()))}"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != entry.get("bytes"):
            return f"{name} has {size} bytes, the manifest says {entry.get('bytes')}"
        if sha256_of(path) != entry.get("sha256"):
            return f"{name} does not match its sha256"
    return None


@contextlib.contextmanager
def _locked(lock_path: Path):
    """An exclusive lock between processes (POSIX flock); without fcntl the atomic renames alone."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    if untrusted.special_kind(lock_path):  # a FIFO there would block the open; it locks nothing: replaced
        lock_path.unlink(missing_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(folder: Path, build: Callable[[], tuple], identity: dict, paddle) -> None:
    """Export into a temporary folder, record its manifest, then put it in place of whatever
    `folder` held (two renames: the old export is moved aside first, then removed)."""
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    try:
        layer, specs = build()
        static = paddle.jit.to_static(layer, input_spec=specs, full_graph=True)
        paddle.jit.save(static, str(tmp / EXPORT_STEM))
        if not program_file(tmp / EXPORT_STEM, identity["format"]).is_file():
            written = ", ".join(sorted(p.name for p in tmp.iterdir()))
            raise RuntimeError(
                f"paddle.jit.save wrote {written}, not {EXPORT_STEM}{PROGRAM_SUFFIXES[identity['format']]}"
            )
        write_manifest(tmp, identity)
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".stale-"))
            os.replace(folder, old / folder.name)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def exported(kind: str, sha256: str, build: Callable[[], tuple], tag: str = "") -> Path:
    """The stem of the checked export of `kind` for the weights `sha256` (+ `tag` for anything else
    that changes the graph) made by this Paddle, exported on first use: build() returns the layer
    and its input specs. An export that fails its manifest check is rebuilt, never returned."""
    paddle = import_paddle()
    identity = paddle_identity(paddle)
    folder = export_folder(kind, sha256, tag, identity)
    if check_export(folder, identity) is None:  # whole: read as it is, so a read-only cache (one an admin
        return folder / EXPORT_STEM  # filled for a cluster's users) serves it without the lock file's write
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f".{folder.name}.lock"):
        if check_export(folder, identity) is not None:
            _build(folder, build, identity, paddle)
            problem = check_export(folder, identity)
            if problem is not None:  # the disk changed under us: do not hand it to C++
                raise RuntimeError(f"the fresh export in {folder} failed its check: {problem}")
    return folder / EXPORT_STEM


def list_exports() -> list[dict]:
    """Every export in the cache: its name, size, its manifest check, and whether this Paddle uses it
    (exports of other Paddle versions or formats, or from before manifests, are kept but unused)."""
    from mnistgen.data import cache_dir

    root = cache_dir() / INFERENCE_SUBDIR
    identity = paddle_identity()
    suffix = f"-paddle{identity['paddle']}-{identity['format']}"
    rows = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        used = folder.name.endswith(suffix)
        problem = check_export(folder, identity if used else None)
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        rows.append({"name": folder.name, "bytes": size, "status": problem or "ok", "this_paddle": used})
    return rows


@contextlib.contextmanager
def _quiet_fd2(quiet: bool):
    """Paddle 2.6's oneDNN bf16 passes print two dozen lines to fd 2 whatever the log settings;
    a predictor's creation runs with fd 2 on /dev/null there (its errors still come as exceptions)."""
    if not quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Predictor:
    """A Paddle Inference predictor on an export: arrays in (by input name), one array out. Rows
    always run in the same runs of SPLIT, so a row's result depends only on its run, not on how
    many rows come in one call. It runs oneDNN on the CPU, in fp32 or bf16."""

    def __init__(self, stem: Path, threads: int, precision: str = "fp32", skipped_passes: tuple = ()):
        paddle = import_paddle()
        from paddle import inference

        fmt = export_format(paddle)
        self.precision = precision
        cfg = inference.Config(str(program_file(stem, fmt)), str(stem) + PARAMS_SUFFIX)
        cfg.disable_gpu()
        cfg.set_cpu_math_library_num_threads(threads)
        cfg.enable_mkldnn()
        for name in skipped_passes:
            cfg.delete_pass(name)
        if precision == "bf16":
            cfg.enable_mkldnn_bfloat16()
            for name in BF16_SKIPPED_PASSES:
                cfg.delete_pass(name)
        cfg.disable_glog_info()
        with _quiet_fd2(paddle.__version__.startswith("2.")):
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
