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
