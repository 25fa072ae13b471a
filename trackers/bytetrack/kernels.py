"""The tracker's compiled (Numba) kernels: whether their on-disk cache is ready, a notice before
they compile, and the install-time compile.

Every kernel is `@njit(cache=True)`: compiled once (about 20-35 s for all of them, depending on
the machine), then loaded from Numba's cache in under a second. The cache lives in
`__pycache__` next to the sources (or under `$NUMBA_CACHE_DIR`) and is invalidated by a change
of a source file, of the Numba version or of the CPU. `install.sh` compiles them once:

    python3 -m lanewatch.trackers.bytetrack.warm_up          # compile, or load the cache (~1 s)
    python3 -m lanewatch.trackers.bytetrack.warm_up --check  # exit 0 if cached, 1: compile due

At run time, `warm_up(on_compile=...)` (warm_up.py) calls back just before the first actual
compile (Numba's documented event API, "numba:compile": fired on a cache miss only), so a
caller can say so before the wait and say nothing when the cache is warm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from numba.core import event
from numba.core.dispatcher import Dispatcher

from lanewatch.trackers.bytetrack import association, kalman

# What callers print just before a compile at run time (install.sh should have done it).
COMPILING_MESSAGE = "compiling the tracker's kernels (first run only, about 30 s)"
INSTALL_MESSAGE = "compiling the tracker's kernels (once per installation, ~30 s)"


def kernels() -> tuple[Dispatcher, ...]:
    """Every compiled kernel of the tracker (those defined in kalman.py and association.py)."""
    found = []
    for module in (kalman, association):
        for value in vars(module).values():
            if (isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__
                    and value not in found):
                found.append(value)
    return tuple(found)


def is_cached() -> bool:
    """Whether every kernel has a current entry in Numba's on-disk cache for this machine (same
    Numba version, same source file, same bytecode, same CPU), read from the cache's index files
    without compiling or loading anything.

    False means `warm_up` will compile. True means it will load, barring a signature that was
    never compiled (not the case after `warm_up` ran once). Numba exposes no public call for
    this, so it reads the dispatchers' cache objects; if their layout changes in a future
    Numba, the answer is False (a needless notice at worst, never a silent compile: the
    `on_compile` callback of `warm_up` does not depend on this).
    """
    try:
        return all(_has_entry(kernel) for kernel in kernels())
    except Exception:  # Numba's internals changed: unknown counts as not cached
        return False


def _has_entry(kernel: Dispatcher) -> bool:
    cache = kernel._cache
    index = cache._cache_file._load_index()  # {} when missing, stale or another Numba version
    # Keys are (signature, machine, code hashes); the signature cannot be known in advance.
    current = cache._index_key(None, kernel.targetctx.codegen())[1:]
    return any(tuple(key[1:]) == current for key in index)


@dataclass(frozen=True)
class CacheUse:
    """Per-process counts from the kernels' dispatchers (`Dispatcher.stats`).

    Attributes:
        loaded: signatures loaded from the on-disk cache.
        compiled: signatures compiled (cache misses; nested kernels count too).
        cache_dirs: where the cache files are.
    """

    loaded: int
    compiled: int
    cache_dirs: tuple[str, ...]


def cache_use() -> CacheUse:
    """How the kernels got into this process so far: loaded from the cache or compiled."""
    stats = [kernel.stats for kernel in kernels()]
    return CacheUse(sum(sum(s.cache_hits.values()) for s in stats),
                    sum(sum(s.cache_misses.values()) for s in stats),
                    tuple(sorted({str(s.cache_path) for s in stats})))


class _FirstCompile(event.Listener):
    """Calls back once, at the start of the first compile of one of our kernels."""

    def __init__(self, callback: Callable[[], None]):
        self._callback = callback
        self._ours = set(map(id, kernels()))
        self.fired = False

    def on_start(self, ev: event.Event) -> None:
        if not self.fired and id(ev.data.get("dispatcher")) in self._ours:
            self.fired = True
            self._callback()

    def on_end(self, ev: event.Event) -> None:
        pass


@contextlib.contextmanager
def on_first_compile(callback: Callable[[], None] | None) -> Iterator[None]:
    """Inside the block, `callback()` runs right before the first of the kernels compiles (a
    cache miss); never when they all load from the cache."""
    if callback is None:
        yield
        return
    with event.install_listener("numba:compile", _FirstCompile(callback)):
        yield
