"""Benchmark: images per second of generate's paths, in one run, with ratios.

    python benchmarks/bench_generate.py [--model cvae-2d] [--count 2000] [--repeats 3] [--memory]
        [--classifier NAME[,NAME]]...

Prints the median of --repeats runs for:
  eager-decode      Paddle eager, the tutorial's way (one batch of BATCH through the decoder), decode only
  eager+png         the same, then PIL PNG files written one after another (the tutorial-style loop)
  predictor fp32/bf16  mnistgen's CPU decoder (Paddle Inference + oneDNN), decode only; bf16 where
                    the CPU has fast bfloat16 (AMX)
  mnistgen png/hdf5/npz   `generate` end to end (decode, encode, write), through the library, at the
                    default precision (and png again in fp32 when the default is bf16); "verified":
                    with the verifier and threshold the model card recommends (generate's default
                    then), and with each --classifier at the card's threshold. The HDF5 lines,
                    unverified and verified, are timed round-robin (timing.interleaved_rates), so
                    drift on a shared machine slows them alike
  files only        the disk's ceiling for the PNG path: the same small file written --count times
                    into one directory, as generate writes (open, write, rename), no decoding
  torch+png         a PyTorch eager decoder of the same architecture writing PNGs with PIL (if torch imports)
and, with --memory, the peak RSS of `mnistgen generate --digit all --count 10000` to HDF5 (100,000 images)
next to that of 10 images (flat memory: the two are close), and the cold-start time of
`mnistgen generate --digit 7 --count 10` (PNGs, the exported decoder already cached).
Absolute numbers drift on shared machines; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import interleaved_rates, median_rate

os.environ.setdefault("GLOG_minloglevel", "2")

BATCH = 1000  # the eager baseline decodes this many at once
JOB_NUMBERS = itertools.count()  # every timed job writes to a directory of its own
DIGIT = 7


def eager_paths(weights, count: int, out: Path):
    from mnistgen import data, decoders, export

    model = decoders.load_model(weights)
    z = np.random.default_rng(0).standard_normal((count, weights.config.latent), dtype=np.float32)
    labels = data.one_hot(np.full(count, DIGIT), weights.config.num_classes) if weights.config.conditional else None

    def decode_only():
        return [
            decoders.decode(model, z[i : i + BATCH], None if labels is None else labels[i : i + BATCH])
            for i in range(0, count, BATCH)
        ]

    def decode_and_write():
        out.mkdir(exist_ok=True)
        n = 0
        for images in decode_only():
            for image in images:
                export.write_png(out / f"{n:05d}.png", image)
                n += 1

    return decode_only, decode_and_write


def predictor_decode(weights, count: int, precision: str):
    from mnistgen import data, decoders, sample
    from mnistgen.sampling import Sampling

    decoder = decoders.make_decoder(weights, "cpu", Sampling(precision=precision), backend="predictor")
    blocks = -(-count // sample.BLOCK)
    labels = (
        data.one_hot(np.full(sample.BLOCK, DIGIT), weights.config.num_classes) if weights.config.conditional else None
    )

    def run():
        for b in range(blocks):
            decoder(sample.block_latents(0, DIGIT, b, weights.config.latent), labels)

    return run, decoder


def file_ceiling(count: int, root: Path, threads: int):
    """Files/s of writing the same PNG bytes `count` times into one directory the way generate does
    (open, write, rename; `threads` writers): what the disk allows, with no decoding at all."""
    from concurrent.futures import ThreadPoolExecutor

    from mnistgen import atomic, export

    payload = export.png_bytes(np.zeros((28, 28), np.uint8))

    def run():
        folder = root / f"files-{next(JOB_NUMBERS)}"
        folder.mkdir()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: atomic.write_bytes(folder / f"{i:05d}.png", payload), range(count)))

    return run


def mnistgen_job(weights, decoder, count: int, fmt: str, root: Path, confidence=None):
    from mnistgen import generate as gen
    from mnistgen import sample
    from mnistgen.labels import labels_for

    def run():
        n = next(JOB_NUMBERS)
        out = root / (f"{fmt}-{n}" + {"png": "", "hdf5": ".h5", "npz": ".npz"}[fmt])
        labels = labels_for(weights, [DIGIT] if weights.config.conditional else None)
        job = gen.plan_job(weights, labels, count, out, seed=1, fmt=gen.Format(fmt))
        gen.run_job(job, sample.Sampler(decoder, job.sampling, confidence))

    return run


def torch_png(weights, count: int, out: Path):
    try:
        import torch
    except ImportError:
        return None
    from mnistgen import export

    cfg, arrays = weights.config, weights.arrays()
    c, side = cfg.channels, cfg.feature_side
    extra = cfg.num_classes if cfg.conditional else 0
    fc = torch.nn.Linear(cfg.latent + extra, c * side * side)
    up1, up2 = torch.nn.ConvTranspose2d(c, 2 * c, 4, 2, 1), torch.nn.ConvTranspose2d(2 * c, c, 4, 2, 1)
    conv = torch.nn.Conv2d(c, 1, 3, 1, 1)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(arrays["decoder.fc.weight"].T.copy()))  # Paddle Linear is (in, out)
        fc.bias.copy_(torch.from_numpy(arrays["decoder.fc.bias"]))
        for layer, name in ((up1, "up1"), (up2, "up2"), (conv, "out")):
            layer.weight.copy_(torch.from_numpy(arrays[f"decoder.{name}.weight"]))
            layer.bias.copy_(torch.from_numpy(arrays[f"decoder.{name}.bias"]))
    z = torch.randn(count, cfg.latent)
    onehot = torch.nn.functional.one_hot(torch.full((count,), DIGIT), cfg.num_classes).float()
    act = torch.nn.functional.leaky_relu

    def run():
        out.mkdir(exist_ok=True)
        n = 0
        with torch.no_grad():
            for i in range(0, count, BATCH):
                h = torch.cat([z[i : i + BATCH], onehot[i : i + BATCH]], 1) if cfg.conditional else z[i : i + BATCH]
                h = act(fc(h)).view(-1, c, side, side)
                y = torch.tanh(conv(act(up2(act(up1(h))))))
                images = ((y[:, 0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
                for image in images:
                    export.write_png(out / f"{n:05d}.png", image)
                    n += 1

    return run


# VmHWM is the peak RSS of the process's own address space, which exec starts afresh; getrusage's
# ru_maxrss would also count the pages of this large parent that the child had before exec.
PEAK_RSS_PROBE = (
    "import runpy, sys\n"
    "sys.argv = ['mnistgen'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('mnistgen', run_name='__main__')\n"
    "finally:\n"
    "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "    print('PEAK_RSS_KIB', hwm, file=sys.stderr)\n"
)


def peak_memory_and_cold_start(model: str, root: Path) -> dict:
    """Peak RSS measured inside the child (Linux /proc)."""
    args = ["generate", "--model", model, "-q", "--seed", "1"]
    small = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_PROBE, *args, "--digit", "7", "--count", "10", "--out", str(root / "small.h5")],
        capture_output=True,
        text=True,
    )
    big = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_RSS_PROBE,
            *args,
            "--digit",
            "all",
            "--count",
            "10000",
            "--out",
            str(root / "mem.h5"),
        ],
        capture_output=True,
        text=True,
    )

    def peak(proc) -> int:
        return round(int(proc.stderr.split("PEAK_RSS_KIB")[-1].split()[0]) / 1024)

    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mnistgen", *args, "--digit", "7", "--count", "10", "--out", str(root / "cold")],
        check=True,
        capture_output=True,
    )
    return {
        "hdf5_10_images_peak_rss_mib": peak(small),
        "hdf5_100k_images_peak_rss_mib": peak(big),
        "cold_start_10_png_s": round(time.perf_counter() - started, 2),
    }


def verified_specs(weights, others: list[str]) -> dict:
    """The sampling specs of the verified HDF5 lines: the card's own (what generate does by
    default), then the card's threshold with each --classifier instead of its verifier."""
    from mnistgen.config import SamplingRequest
    from mnistgen.sampling import resolve_sampling

    card = resolve_sampling(weights)
    if not card.verified:
        return {}
    specs = {"mnistgen hdf5 verified": card}
    for other in others:
        specs[f"hdf5 verified {other}"] = resolve_sampling(weights, SamplingRequest(classifier=other))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cvae-2d")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--classifier",
        action="append",
        default=[],
        help="also time verified HDF5 with this verifier (NAME or NAME,NAME for an ensemble); repeatable",
    )
    parser.add_argument(
        "--memory", action="store_true", help="also measure peak memory for 100,000 HDF5 images and cold start"
    )
    args = parser.parse_args()

    from mnistgen import checkpoint
    from mnistgen.predictor import fast_bf16, resolve_precision
    from mnistgen.runtime import select_device, usable_cpus

    select_device("cpu")
    weights = checkpoint.inspect(args.model)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        decode_only, decode_and_write = eager_paths(weights, args.count, root / "eager")
        rates["eager-decode"] = median_rate(decode_only, args.count, args.repeats)
        rates["eager+png"] = median_rate(decode_and_write, args.count, args.repeats)
        decoders = {}
        for precision in ("fp32", "bf16") if fast_bf16() else ("fp32",):
            run, decoders[precision] = predictor_decode(weights, args.count, precision)
            rates[f"predictor {precision}"] = median_rate(run, args.count, args.repeats)
        default = decoders[resolve_precision("auto")]
        for fmt in ("png", "npz"):
            rates[f"mnistgen {fmt}"] = median_rate(
                mnistgen_job(weights, default, args.count, fmt, root), args.count, args.repeats
            )
        from mnistgen.decoders import confidence_filter

        hdf5 = {"mnistgen hdf5": mnistgen_job(weights, default, args.count, "hdf5", root)}
        for name, spec in verified_specs(weights, args.classifier).items():  # generate's default, then --classifier
            hdf5[name] = mnistgen_job(weights, default, args.count, "hdf5", root, confidence_filter(spec, "cpu"))
        rates.update(interleaved_rates(hdf5, args.count, args.repeats))  # the ratios that matter, timed in turn
        if default.precision != "fp32":
            rates["mnistgen png fp32"] = median_rate(
                mnistgen_job(weights, decoders["fp32"], args.count, "png", root), args.count, args.repeats
            )
        rates[f"files only x{usable_cpus()}"] = median_rate(
            file_ceiling(args.count, root, usable_cpus()), args.count, args.repeats
        )
        torch_run = torch_png(weights, args.count, root / "torch")
        if torch_run is not None:
            rates["torch+png"] = median_rate(torch_run, args.count, args.repeats)
        extra = peak_memory_and_cold_start(args.model, root) if args.memory else {}

    print(
        f"generate benchmark: model {weights.name}, {args.count} images of digit {DIGIT}, median of {args.repeats}, "
        f"{usable_cpus()} CPUs"
    )
    base = rates["eager+png"]
    for name, rate in rates.items():
        line = f"  {name:22s} {rate:9.0f} images/s   x{rate / base:5.2f} vs eager+png"
        if "torch+png" in rates and name.startswith("mnistgen"):
            line += f"   x{rate / rates['torch+png']:5.2f} vs torch+png"
        print(line)
    for key, value in extra.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
