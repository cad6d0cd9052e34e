"""The one timing rule the benchmarks share: a warm-up, then the median of timed repeats."""

from __future__ import annotations

import statistics
import time


def median_rate(run, images: int, repeats: int) -> float:
    """Images per second of `run()`, which processes `images` images: median of `repeats` after a warm-up."""
    run()  # warm-up (exports, allocations, oneDNN primitive caches)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return images / statistics.median(times)


def interleaved_rates(runs: dict, images: int, repeats: int) -> dict:
    """Images per second of each `runs[name]()`, timed round-robin: a warm-up of each, then
    `repeats` rounds that run each once in turn; the median per name. A machine that drifts
    during the run then slows every contender alike, so their ratios hold."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: images / statistics.median(t) for name, t in times.items()}
