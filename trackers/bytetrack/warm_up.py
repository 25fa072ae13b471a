"""Loading the tracker's compiled kernels before the first frame needs them, and the install-time
compile (`python3 -m lanewatch.trackers.bytetrack.warm_up`, which install.sh runs; `--check`
only reports whether the cache is ready). The cache itself is described in kernels.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from lanewatch.trackers.bytetrack.kernels import (
    INSTALL_MESSAGE,
    cache_use,
    is_cached,
    on_first_compile,
)
from lanewatch.trackers.bytetrack.tracker import ByteTrack, ByteTrackSettings
from lanewatch.trackers.detections import Detections


def warm_up(on_compile: Callable[[], None] | None = None) -> None:
    """Load (or compile, on first use after installation) every compiled kernel of the tracker
    now, so that a live stream does not stall for seconds the first time a path is taken (a
    compile holds the interpreter: every stream of the process would drop frames).

    Loading from Numba's on-disk cache takes under a second; compiling, 20-35 s (install.sh
    does it once, see kernels.py). `on_compile()` is called just before a compile starts,
    never when everything loads from the cache: the time to say "this will take a while".
    """
    with on_first_compile(on_compile):
        _exercise_every_path()


def _exercise_every_path() -> None:
    tracker = ByteTrack(ByteTrackSettings(min_hits=1))
    boxes = np.array([[10.0, 10, 50, 40], [100, 100, 140, 160]], np.float32)
    scores = np.array([0.9, 0.2], np.float32)
    for t in range(3):  # association stages, Kalman predict and update, new tracks
        tracker.update(Detections(boxes + t, scores, np.zeros(2, np.int32)), t / 30)
    tracker.update(Detections.empty(), 3 / 30)  # both tracks lost
    tracker.update(Detections(boxes + 6, scores, np.zeros(2, np.int32)), 6 / 30)  # gap replay
    tracker.update(Detections.empty(), 10.0)  # expiry


def main(argv: list[str] | None = None) -> int:
    """`python3 -m lanewatch.trackers.bytetrack.warm_up`: compile the kernels into Numba's cache
    (what install.sh runs), or only report whether they are cached (`--check`)."""
    parser = argparse.ArgumentParser(
        prog="python3 -m lanewatch.trackers.bytetrack.warm_up",
        description="Compile the tracker's Numba kernels into their on-disk cache, so that "
        "the first `lanewatch process`/`serve` does not wait for the compile.")
    parser.add_argument("--check", action="store_true",
                        help="compile nothing: exit 0 if the cache is ready, 1 if not")
    args = parser.parse_args(argv)
    if args.check:
        cached = is_cached()
        print(f"lanewatch: tracker kernels {'cached' if cached else 'not compiled yet'}")
        return 0 if cached else 1

    started = time.perf_counter()
    warm_up(on_compile=lambda: print(f"lanewatch: {INSTALL_MESSAGE}", flush=True))
    elapsed = time.perf_counter() - started
    use = cache_use()
    where = ", ".join(use.cache_dirs)
    if use.compiled:
        print(f"lanewatch: tracker kernels compiled in {elapsed:.1f} s "
              f"({use.compiled} compiled, {use.loaded} loaded; cache in {where})")
    else:
        print(f"lanewatch: tracker kernels already compiled ({use.loaded} loaded from the "
              f"cache in {elapsed:.1f} s; cache in {where})")
    if not is_cached():
        print("lanewatch: warning: the kernels' cache was not written (is the cache folder "
              "writable? set NUMBA_CACHE_DIR); each run will compile them again",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
