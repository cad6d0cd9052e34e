"""Items/s and the digit mix per batch for three ways of reading a SyntheticMNIST through
paddle.io.DataLoader: shuffle=False, shuffle=True, mnistgen.BlockShuffle; num_workers 0 and 2.

    python benchmarks/bench_loader.py

The shipped cvae (verified at 0.9, its card's default), count=2048 per digit (20,480 items, 80
blocks), batch 256, ToTensor(), use_shared_memory=False. Each worker's decodes are read back
through the items (a subclass adds the reading process's blocks_decoded to each item).
shuffle=True decodes about a block per item: timed on its first SHUFFLED_BATCHES batches only,
and measured last (its workers go on decoding the batches they prefetched after the loop stops).
Runs of one way alternate with nothing else of this script's; the machine is shared (2 cores).
"""

import os
import statistics
import sys
import time

import numpy as np
import paddle
from paddle.vision.transforms import ToTensor

import mnistgen
from mnistgen.dataset import SyntheticMNIST

COUNT, BATCH, RUNS, SHUFFLED_BATCHES = 2048, 256, 3, 2


class Counting(SyntheticMNIST):
    def __getitem__(self, index):
        image, label = super().__getitem__(index)
        return image, label, np.array([os.getpid(), self.blocks_decoded], np.int64)


def run(ds, workers, how, epoch):
    kwargs = dict(num_workers=workers, use_shared_memory=False)
    if how == "blockshuffle":
        sampler = mnistgen.BlockShuffle(ds, batch_size=BATCH, seed=0)
        sampler.set_epoch(epoch)
        loader = paddle.io.DataLoader(ds, batch_sampler=sampler, **kwargs)
    else:
        loader = paddle.io.DataLoader(ds, batch_size=BATCH, shuffle=how == "shuffle", **kwargs)
    limit = SHUFFLED_BATCHES if how == "shuffle" else None
    start, items, digits, top, decoded = time.perf_counter(), 0, [], [], {}
    for i, (_images, labels, info) in enumerate(loader):
        labels, info = labels.numpy()[:, 0], info.numpy()
        items += len(labels)
        counts = np.bincount(labels, minlength=10)
        digits.append(int((counts > 0).sum()))
        top.append(counts.max() / len(labels))
        for pid, n in info:
            decoded[pid] = max(decoded.get(pid, 0), n)
        if limit and i + 1 >= limit:
            break
    seconds = time.perf_counter() - start
    return items / seconds, statistics.median(digits), statistics.median(top), sum(decoded.values()), items


def main():
    paddle.set_device("cpu")
    print(f"paddle {paddle.__version__}, {os.cpu_count()} CPUs, count={COUNT}/digit, batch {BATCH}", flush=True)
    for how in ("in order", "blockshuffle", "shuffle"):  # shuffle last: its workers outlive the loop
        for workers in (0, 2):
            rates, results = [], None
            for r in range(RUNS if how != "shuffle" else 1):
                ds = Counting(count=COUNT, seed=0, transform=ToTensor())  # a fresh cache each run
                rate, digits, top, decoded, items = run(ds, workers, how, r)
                rates.append(rate)
                results = (digits, top, decoded, items)
            digits, top, decoded, items = results
            print(
                f"{how:12s} workers={workers}: {statistics.median(rates):7.0f} items/s "
                f"(runs {[round(x) for x in rates]}), "
                f"digits per batch median {digits:g}, largest digit's share median {top:.0%}, "
                f"blocks decoded {decoded} for {items} items ({-(-items // 256)} blocks' worth)",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
