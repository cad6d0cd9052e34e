"""Benchmark: training images per second of the tutorial's CVAE, in one run, with ratios.

    python benchmarks/bench_train.py [--data DIR] [--images 2048] [--repeats 3]

Prints the median of --repeats timed passes over --images training images (batch 64) for:
  mnistgen       mnistgen's training step (data on the device, index batching, fused Linear heads)
  tutorial       the tutorial's eager loop: numpy batches copied in every step, 1x1-conv heads,
                 two Adam optimizers
  mnistgen xN    `mnistgen train --distributed` in N processes (Paddle's launcher, gloo), each on
                 batch 64/N so the global batch and the loss curve stay those of one process: Paddle's
                 eager CPU step runs on one core, so N processes are how it uses N cores
                 (--processes, default: the usable CPUs; 1 skips it)
  torch          the same network in PyTorch eager (when torch imports; pip install torch==2.13.0)
Absolute numbers drift on shared machines; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from timing import median_rate

os.environ.setdefault("GLOG_minloglevel", "2")

BATCH = 64
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mnist"


def mnistgen_step(dataset, tmp: Path):
    from mnistgen import train
    from mnistgen.config import ModelConfig
    from mnistgen.runtime import import_paddle

    paddle = import_paddle()
    with paddle.utils.unique_name.guard():
        trainer = train.Trainer(ModelConfig(kind="cvae"), dataset, train.TrainOptions(epochs=1, batch_size=BATCH), tmp)
    epochs = iter(range(10_000))
    return lambda: trainer.train_epoch(next(epochs))


def data_parallel_rate(train, processes: int, repeats: int, tmp: Path) -> float:
    """Images/s of `mnistgen train --distributed` in `processes` processes: the median of rank 0's
    per-epoch rates after a warm-up epoch, times the number of processes (each sees 1/N of the data)."""
    from mnistgen import data

    folder = tmp / "dp-data"
    folder.mkdir()
    data.write_idx(folder / "train-images-idx3-ubyte", train.images)
    data.write_idx(folder / "train-labels-idx1-ubyte", train.labels)
    mnistgen = shutil.which("mnistgen") or str(Path(sys.executable).parent / "mnistgen")
    cmd = [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        str(processes),
        "--log_dir",
        str(tmp / "dp-log"),
        mnistgen,
        "train",
        "--distributed",
        "--model",
        "cvae",
        "--data",
        str(folder),
        "--epochs",
        str(repeats + 1),
        "--batch-size",
        str(BATCH // processes),
        "--out",
        str(tmp / "dp-run"),
        "--quiet",
    ]
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
    history = [json.loads(line) for line in (tmp / "dp-run" / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(h["images_per_s"] for h in history[1:]) * processes


def tutorial_loop(images: np.ndarray, labels: np.ndarray):
    """The tutorial's CVAE and loop, as written there (dense layers as 1x1 convolutions)."""
    from mnistgen.runtime import import_paddle

    P = import_paddle()
    nn, F = P.nn, P.nn.functional

    class Encoder(nn.Layer):
        def __init__(self, c=32, latent=2):
            super().__init__()
            self.conv_label = nn.Conv2D(10, 28 * 28, 1)
            self.conv1, self.conv2 = nn.Conv2D(2, c, 4, 2, 1), nn.Conv2D(c, c * 2, 4, 2, 1)
            self.conv_mean, self.conv_logvar = nn.Conv2D(7 * 7 * c * 2, latent, 1), nn.Conv2D(7 * 7 * c * 2, latent, 1)

        def forward(self, x, label):
            x = P.concat([x, P.reshape(self.conv_label(label), [x.shape[0], -1, 28, 28])], 1)
            x = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x))))
            x = P.reshape(x, [x.shape[0], -1, 1, 1])
            return self.conv_mean(x), self.conv_logvar(x)

    class Decoder(nn.Layer):
        def __init__(self, c=32, latent=2):
            super().__init__()
            self.conv1 = nn.Conv2D(latent + 10, 7 * 7 * c, 1)
            self.conv2, self.conv3 = nn.Conv2DTranspose(c, c * 2, 4, 2, 1), nn.Conv2DTranspose(c * 2, c, 4, 2, 1)
            self.conv4 = nn.Conv2D(c, 1, 3, 1, 1)

        def forward(self, x, label):
            x = F.leaky_relu(self.conv1(P.concat([x, label], 1)))
            x = F.leaky_relu(self.conv3(F.leaky_relu(self.conv2(P.reshape(x, [x.shape[0], -1, 7, 7])))))
            return F.tanh(self.conv4(x))

    encoder, decoder = Encoder(), Decoder()
    opt_e = P.optimizer.Adam(learning_rate=1e-4, beta1=0.5, parameters=encoder.parameters())
    opt_d = P.optimizer.Adam(learning_rate=1e-4, beta1=0.5, parameters=decoder.parameters())
    x_all = images.astype(np.float32)[:, None] / 127.5 - 1
    y_all = np.eye(10, dtype=np.float32)[labels].reshape(-1, 10, 1, 1)

    def run():
        order = np.random.permutation(len(x_all))
        for i in range(len(x_all) // BATCH):
            pick = order[i * BATCH : (i + 1) * BATCH]
            x, y = P.to_tensor(x_all[pick]), P.to_tensor(y_all[pick])
            z = P.to_tensor(np.random.normal(0, 1, (BATCH, 2, 1, 1)).astype(np.float32))
            mean, logvar = encoder(x, y)
            out = decoder(z * P.exp(0.5 * logvar) + mean, y)
            loss = P.mean(P.sum((x - out) ** 2, [1, 2, 3])) + P.mean(
                P.sum(-0.5 * (1 + logvar - mean**2 - P.exp(logvar)), [1, 2, 3])
            )
            encoder.clear_gradients()
            decoder.clear_gradients()
            loss.backward()
            opt_e.minimize(loss)
            opt_d.minimize(loss)

    return run


def torch_loop(images: np.ndarray, labels: np.ndarray):
    try:
        import torch
    except ImportError:
        return None
    nn, F = torch.nn, torch.nn.functional
    c = 32
    enc = nn.ModuleDict(
        {
            "label": nn.Linear(10, 784),
            "c1": nn.Conv2d(2, c, 4, 2, 1),
            "c2": nn.Conv2d(c, 2 * c, 4, 2, 1),
            "mean": nn.Linear(2 * c * 49, 2),
            "logvar": nn.Linear(2 * c * 49, 2),
        }
    )
    dec = nn.ModuleDict(
        {
            "fc": nn.Linear(12, c * 49),
            "u1": nn.ConvTranspose2d(c, 2 * c, 4, 2, 1),
            "u2": nn.ConvTranspose2d(2 * c, c, 4, 2, 1),
            "out": nn.Conv2d(c, 1, 3, 1, 1),
        }
    )
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3, betas=(0.5, 0.999))
    x_all = torch.from_numpy(images.astype(np.float32)[:, None] / 127.5 - 1)
    y_all = F.one_hot(torch.from_numpy(labels.astype(np.int64)), 10).float()

    def run():
        order = torch.randperm(len(x_all))
        for i in range(len(x_all) // BATCH):
            pick = order[i * BATCH : (i + 1) * BATCH]
            x, y = x_all[pick], y_all[pick]
            h = torch.cat([x, enc["label"](y).view(-1, 1, 28, 28)], 1)
            h = F.leaky_relu(enc["c2"](F.leaky_relu(enc["c1"](h)))).flatten(1)
            mean, logvar = enc["mean"](h), enc["logvar"](h)
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
            h = F.leaky_relu(dec["fc"](torch.cat([z, y], 1))).view(-1, c, 7, 7)
            out = torch.tanh(dec["out"](F.leaky_relu(dec["u2"](F.leaky_relu(dec["u1"](h))))))
            loss = ((x - out) ** 2).sum((1, 2, 3)).mean() + (-0.5 * (1 + logvar - mean**2 - logvar.exp())).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return run


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FIXTURE)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--processes", type=int, default=None, help="data-parallel processes (default: the usable CPUs)"
    )
    args = parser.parse_args()

    from mnistgen import data, sources
    from mnistgen.runtime import select_device, usable_cpus

    select_device("cpu")
    dataset = sources.load(args.data)
    reps = -(-args.images // len(dataset.train))
    train = data.Split(
        np.tile(dataset.train.images, (reps, 1, 1))[: args.images], np.tile(dataset.train.labels, reps)[: args.images]
    )
    dataset = data.Dataset(train, None, str(args.data))
    n = len(train) // BATCH * BATCH
    rates = {}
    processes = args.processes or usable_cpus()
    with tempfile.TemporaryDirectory() as tmp:
        rates["mnistgen"] = median_rate(mnistgen_step(dataset, Path(tmp)), n, args.repeats)
        if processes > 1:
            rates[f"mnistgen x{processes}"] = data_parallel_rate(train, processes, args.repeats, Path(tmp))
    rates["tutorial"] = median_rate(tutorial_loop(train.images, train.labels), n, args.repeats)
    torch_run = torch_loop(train.images, train.labels)
    if torch_run is not None:
        rates["torch"] = median_rate(torch_run, n, args.repeats)
    print(
        f"train benchmark: tutorial CVAE, batch {BATCH}, {n} images per pass, median of {args.repeats}, "
        f"{usable_cpus()} CPUs"
    )
    for name, rate in rates.items():
        line = f"  {name:11s} {rate:8.0f} images/s   x{rate / rates['tutorial']:5.2f} vs tutorial"
        if "torch" in rates:
            line += f"   x{rate / rates['torch']:5.2f} vs torch"
        print(line)


if __name__ == "__main__":
    main()
