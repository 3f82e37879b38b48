"""The cyclic garbage collector, tuned for a long-running server process (the API and the worker).

py-spy --native on bench/gifts.py: 29 % of the API's main-thread time was `gc_collect_main`, ~0.5 ms
of CPU per gift, and ~20 % of the worker's CPU. About 300,000 tracked objects (modules, classes,
FastAPI's, pydantic's and Faust's tables) live as long as the process, and each full collection
walked them all (~0.2 s of CPU, every 2-3 s under load): frozen after start-up, they are walked no
more. The young generations hold the in-flight requests' and batches' coroutines, frames and futures
(6,000 coroutines at 256 requests in flight), rescanned at every collection of 700 new objects:
collected every 10,000, the same garbage is found with far fewer rescans. Only the collector's
schedule changes: every object is freed as before, cycles a little later.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (10_000, 20, 20)

_tuned = 0  # servers running in this process with the collector tuned (tests run several apps)
_untuned = gc.get_threshold()


def tune_collector() -> None:
    """Freeze what start-up built and raise the thresholds (undone by `restore_collector`)."""
    global _tuned, _untuned
    if _tuned == 0:
        _untuned = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
    _tuned += 1
    gc.collect()
    gc.freeze()


def restore_collector() -> None:
    """When the last tuned server stops: the thresholds as they were, and nothing frozen (an app
    made and stopped in a test process leaves no frozen heap behind)."""
    global _tuned
    _tuned -= 1
    if _tuned == 0:
        gc.set_threshold(*_untuned)
        gc.unfreeze()
