"""Benchmark: images per second of SyntheticMNIST through paddle.io.DataLoader, beside generate's.

    python benchmarks/bench_dataset.py [--model cvae] [--count 1000] [--repeats 3]

Prints the median of --repeats runs for:
  generate hdf5 / tar     `generate --digit all` to an HDF5 file / a WebDataset tar, through the library
  loader w=W b=B          SyntheticMNIST(count per digit, ToTensor()) read once through paddle.io.DataLoader
                          (batch_size=B, num_workers=W, use_shared_memory=False), each run in a fresh
                          interpreter (as a training script), timed from its first batch (so the
                          model loads are not counted) to its last
Absolute numbers drift on shared machines; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import median_rate

os.environ.setdefault("GLOG_minloglevel", "2")

LOADER = """
import sys, time
import paddle
from paddle.vision.transforms import ToTensor
import mnistgen

model, count, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ds = mnistgen.SyntheticMNIST(model=model, count=count, seed=0, transform=ToTensor())
seen, started = 0, None
for images, labels in paddle.io.DataLoader(ds, batch_size=batch, num_workers=workers, use_shared_memory=False):
    if started is None:
        started, first = time.perf_counter(), images.shape[0]
    seen += images.shape[0]
print((seen - first) / (time.perf_counter() - started))
"""


def loader_rate(model: str, count: int, workers: int, batch: int) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, model, str(count), str(workers), str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(proc.stdout.strip().splitlines()[-1])


def generate_rate(model: str, count: int, fmt: str, root: Path, repeats: int) -> float:
    from mnistgen import api, checkpoint
    from mnistgen import generate as gen
    from mnistgen.labels import labels_for
    from mnistgen.sampling import resolve_sampling

    weights = checkpoint.inspect_role(model, "--model")
    spec = resolve_sampling(weights)
    sampler = api.Model(weights, "cpu").sampler(spec)
    labels = labels_for(weights, None)
    runs = iter(range(10**6))

    def run():
        out = root / f"{fmt}-{next(runs)}.{'h5' if fmt == 'hdf5' else fmt}"
        gen.run_job(gen.plan_job(weights, labels, count, out, 0, None, spec), sampler)

    return median_rate(run, count * len(labels), repeats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="cvae")
    parser.add_argument("--count", type=int, default=1000, help="images per digit")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("hdf5", "tar"):
            rates[f"generate {fmt}"] = generate_rate(args.model, args.count, fmt, Path(tmp), args.repeats)
    for workers in (0, 2):
        for batch in (64, 256):
            runs = [loader_rate(args.model, args.count, workers, batch) for _ in range(args.repeats)]
            rates[f"loader w={workers} b={batch}"] = statistics.median(runs)
    print(f"model {args.model}, {args.count} per digit, medians of {args.repeats}, {time.strftime('%Y-%m-%d')}")
    for name, rate in rates.items():
        print(f"  {name:22s} {rate:9.0f} images/s")


if __name__ == "__main__":
    main()
