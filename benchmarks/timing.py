"""The one timing rule the benchmarks share: a warm-up, then the median of timed repeats."""

from __future__ import annotations

import statistics
import time


def interleaved_rates(runs: dict, images: int, repeats: int) -> dict:
    """Images per second of each `runs[name]()`, which processes `images` images: a warm-up of each
    (exports, allocations, oneDNN primitive caches), then `repeats` rounds that run each once in
    turn; the median per name. A machine that drifts during the run then slows every contender
    alike, so their ratios hold."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: images / statistics.median(t) for name, t in times.items()}


def median_rate(run, images: int, repeats: int) -> float:
    """Images per second of `run()` alone: median of `repeats` after a warm-up."""
    return interleaved_rates({"run": run}, images, repeats)["run"]
