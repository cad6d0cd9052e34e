"""Benchmark: `mnistgen train` end to end against the same network in PyTorch eager, in one run.

    python benchmarks/bench_train.py --data DIR [--images 6400] [--repeats 3]

DIR holds MNIST's IDX files (train and t10k). Each pass is a fresh process, timed from its start to
its exit (Python and library imports, reading the data, one epoch on the first --images training
images at batch 64, the test loss on the 10,000 test images, and for mnistgen also what `train`
writes: the latent statistics of the card, a sample grid, checkpoints):
  mnistgen x1    mnistgen train --epochs 1 --processes 1
  mnistgen xN    mnistgen train --epochs 1 (the default: one process per usable CPU, batch 64/N each)
  torch          the tutorial CVAE in PyTorch eager (pip install torch==2.13.0), its default threads
  torch 1 thread the same with torch.set_num_threads(1) (on a loaded machine OpenMP threads can lose)
The passes run interleaved (x1, xN, torch, x1, ...) so that a shared machine's load falls on all of
them alike; medians of --repeats, and the ratio to the faster PyTorch. Each pass also reports its time inside
the process: training, and the rest (mnistgen: evaluation, statistics, grid, writing; PyTorch: the
test loss).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 64

TORCH_SCRIPT = r"""
import gzip, sys, time
import numpy as np
import torch
nn, F = torch.nn, torch.nn.functional

def idx(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)

folder, images, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
def find(stem):
    import os
    return next(os.path.join(folder, n) for n in (stem, stem + ".gz") if os.path.exists(os.path.join(folder, n)))
x_train = idx(find("train-images-idx3-ubyte"))[:images]
y_train = idx(find("train-labels-idx1-ubyte"))[:images]
x_test, y_test = idx(find("t10k-images-idx3-ubyte")), idx(find("t10k-labels-idx1-ubyte"))
torch.manual_seed(0)
c, d = 32, 2
enc = nn.ModuleDict({"label": nn.Linear(10, 784), "c1": nn.Conv2d(2, c, 4, 2, 1), "c2": nn.Conv2d(c, 2 * c, 4, 2, 1),
                     "mean": nn.Linear(2 * c * 49, d), "logvar": nn.Linear(2 * c * 49, d)})
dec = nn.ModuleDict({"fc": nn.Linear(d + 10, c * 49), "u1": nn.ConvTranspose2d(c, 2 * c, 4, 2, 1),
                     "u2": nn.ConvTranspose2d(2 * c, c, 4, 2, 1), "out": nn.Conv2d(c, 1, 3, 1, 1)})
opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3, betas=(0.5, 0.999))

def tensors(x, y):
    images = torch.from_numpy(x.astype(np.float32)[:, None] / 127.5 - 1)
    return images, F.one_hot(torch.from_numpy(y.astype(np.int64)), 10).float()

def loss_terms(x, y, noise):
    h = torch.cat([x, enc["label"](y).view(-1, 1, 28, 28)], 1)
    h = F.leaky_relu(enc["c2"](F.leaky_relu(enc["c1"](h)))).flatten(1)
    mean, logvar = enc["mean"](h), enc["logvar"](h)
    z = mean + noise * torch.exp(0.5 * logvar)
    h = F.leaky_relu(dec["fc"](torch.cat([z, y], 1))).view(-1, c, 7, 7)
    out = torch.tanh(dec["out"](F.leaky_relu(dec["u2"](F.leaky_relu(dec["u1"](h))))))
    return ((x - out) ** 2).sum((1, 2, 3)).mean(), (-0.5 * (1 + logvar - mean**2 - logvar.exp())).sum(1).mean()

started = time.perf_counter()
x_all, y_all = tensors(x_train, y_train)
order = torch.randperm(len(x_all))
for i in range(len(x_all) // batch):
    pick = order[i * batch : (i + 1) * batch]
    rec, kl = loss_terms(x_all[pick], y_all[pick], torch.randn(batch, d))
    opt.zero_grad()
    (rec + kl).backward()
    opt.step()
trained = time.perf_counter()
total = 0.0
with torch.no_grad():
    for s in range(0, len(x_test), 1000):
        x, y = tensors(x_test[s : s + 1000], y_test[s : s + 1000])
        rec, kl = loss_terms(x, y, torch.randn(len(x), d))
        total += float(rec + kl) * len(x)
import json
evaluated = time.perf_counter()
print(json.dumps({"train_s": trained - started, "eval_s": evaluated - trained, "test_loss": total / len(x_test)}))
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def mnistgen_cmd(data: Path, images: int, out: Path, processes: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "mnistgen", "train", "--model", "cvae", "--data", str(data), "--limit", str(images)]
    cmd += ["--epochs", "1", "--batch-size", str(BATCH), "--out", str(out), "--quiet"]
    return cmd + (["--processes", str(processes)] if processes else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a directory of MNIST's IDX files (train and t10k)")
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")

    from mnistgen.parallel import default_processes
    from mnistgen.runtime import usable_cpus

    cpus = usable_cpus()
    processes = default_processes(BATCH, cpus, args.images)
    names = ["mnistgen x1"] + ([f"mnistgen x{processes}"] if processes > 1 else [])
    torches = {"torch": 0, "torch 1 thread": 1}
    try:
        import torch  # noqa: F401
    except ImportError:
        torches = {}
        print("torch is not installed (pip install torch==2.13.0): no yardstick", file=sys.stderr)
    walls: dict = {name: [] for name in [*names, *torches]}
    inside: dict = {name: [] for name in walls}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("MNISTGEN_DATA", str(tmp / "cache"))  # exports of this benchmark, removed with it
        for rep in range(args.repeats):
            for name in names:
                out = tmp / f"{name.replace(' ', '-')}-{rep}"
                seconds, stdout = timed(mnistgen_cmd(args.data, args.images, out, None if "x1" not in name else 1), tmp)
                summary = json.loads(stdout.strip().splitlines()[-1])
                walls[name].append(seconds)
                inside[name].append((summary["seconds_total"], summary["seconds"]))
            for name, threads in torches.items():
                script = [
                    sys.executable,
                    "-c",
                    TORCH_SCRIPT,
                    str(args.data),
                    str(args.images),
                    str(BATCH),
                    str(threads),
                ]
                seconds, stdout = timed(script, tmp)
                summary = json.loads(stdout.strip().splitlines()[-1])
                walls[name].append(seconds)
                inside[name].append((summary["train_s"] + summary["eval_s"], summary["train_s"]))
    # the yardstick is PyTorch as fast as it ran here: its default threads, or one thread where
    # other jobs load the machine (OpenMP threads then wait for each other)
    yardstick = min(statistics.median(walls[name]) for name in torches) if torches else None
    print(
        f"train benchmark: tutorial CVAE, 1 epoch on {args.images} images (batch {BATCH}) + test loss on 10,000, "
        f"end to end per process; median of {args.repeats}, interleaved; {cpus} usable CPUs"
    )
    for name, times in walls.items():
        wall = statistics.median(times)
        line = f"  {name:14s} {wall:6.1f} s"
        total, train_s = (statistics.median(v[i] for v in inside[name]) for i in range(2))
        line += f"   (timed inside: {total:5.1f} s, training {train_s:5.1f} s, the rest {total - train_s:4.1f} s)"
        if yardstick:
            line += f"   x{wall / yardstick:4.2f} the faster PyTorch"
        print(line)
    print("  runs: " + "; ".join(f"{name} " + ", ".join(f"{t:.1f}" for t in times) for name, times in walls.items()))


if __name__ == "__main__":
    main()
