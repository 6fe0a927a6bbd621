"""Running a large job without the cyclic garbage collector's full passes."""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Suspend the cyclic garbage collector for one run, restoring it afterwards.

    A plan holds every parsed object, IR record and manifest at once and creates almost no
    reference cycles, so the collector's full passes re-walk a heap that never shrinks: on a
    2,000-service mesh they were half of the run (tests/benchmarks/bench_plan.py). Writing
    plan.json from that heap is the same: a full pass that happened to start there more than
    doubled its time. Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # Everything the run allocated still counts as young: the first allocation after
            # enable() would start a collection that walks all of it (several % of a plan).
            # freeze() + unfreeze() file it with the oldest generation and reset the young
            # count, so only a later full pass (rare) looks at it again; cycles it holds are
            # still found then.
            gc.freeze()
            gc.unfreeze()
            gc.enable()
