"""Matching automatic counts to a manual count: which counted vehicle is which.

A count event is one vehicle counted once: a time, a lane (or a turning movement), a direction
and a class. Manual and automatic events are matched within a time tolerance, separately for
each (lane, direction): an event in another lane or direction is never its partner, so a
vehicle counted in the wrong direction is one miss plus one extra. Inside a (lane, direction)
the matching is a minimum-cost assignment with a lexicographic objective:

1. as many pairs as possible with |t_auto - t_manual| <= tolerance (inclusive, give or take a
   microsecond: events.jsonl rounds times to the millisecond);
2. among those, as few pairs of different classes as possible (a vehicle counted with the wrong
   class is a class confusion, not a miss plus an extra);
3. among those, the smallest total time difference.

Greedy nearest-in-time pairing is optimal for (1) alone on a line, but not once classes enter
(it can pair a car with a truck when a swap would pair both correctly), so the assignment is
solved exactly with SciPy's Hungarian solver on a cost matrix whose weights make each level
outweigh everything below it. The time line is first cut wherever consecutive events are more
than the tolerance apart: no pair can span such a gap, so the pieces are solved on their own
and the matrices stay small.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

DEFAULT_TOLERANCE_S = 1.0
# Times in events.jsonl are rounded to 1 ms: a pair exactly at the tolerance on paper must not
# fall out through floating-point noise, so the boundary is inclusive with this slack.
_EPS_S = 1e-6


@dataclass(frozen=True)
class CountEvent:
    """One counted vehicle: a line crossing (lane, direction) or a turning movement (lane = the
    movement's name, direction = "")."""

    time_s: float  # from the start of the video
    lane: str
    direction: str
    class_name: str
    frame: int | None = None
    line: int | None = None  # its line in the file it came from (for messages)
    track_id: int | None = None  # automatic events only

    @property
    def group(self) -> tuple[str, str]:
        """The (lane, direction) inside which it can be matched."""
        return (self.lane, self.direction)


@dataclass(frozen=True)
class MatchedPair:
    """A manual event and the automatic event matched to it."""

    manual: CountEvent
    automatic: CountEvent

    @property
    def time_error_s(self) -> float:
        """Automatic minus manual time: positive when the automatic count is later."""
        return self.automatic.time_s - self.manual.time_s

    @property
    def same_class(self) -> bool:
        return self.manual.class_name == self.automatic.class_name


@dataclass(frozen=True)
class CountMatching:
    """The outcome of matching: pairs (correct or class confusions), misses and extras."""

    tolerance_s: float
    pairs: tuple[MatchedPair, ...]
    missed: tuple[CountEvent, ...]  # manual events with no automatic partner (under-count)
    extra: tuple[CountEvent, ...]  # automatic events with no manual partner (over-count)

    @property
    def manual(self) -> list[CountEvent]:
        return [p.manual for p in self.pairs] + list(self.missed)

    @property
    def automatic(self) -> list[CountEvent]:
        return [p.automatic for p in self.pairs] + list(self.extra)


def _by_time(events: Iterable[CountEvent]) -> list[CountEvent]:
    return sorted(events, key=lambda e: (e.time_s, e.class_name))


def _pieces(manual: list[CountEvent], automatic: list[CountEvent], tolerance_s: float):
    """Split both (time-sorted) lists where the merged time line has a gap over the tolerance."""
    merged = sorted([(e.time_s, 0, i) for i, e in enumerate(manual)]
                    + [(e.time_s, 1, i) for i, e in enumerate(automatic)])
    piece: tuple[list[int], list[int]] = ([], [])
    last = None
    for t, side, i in merged:
        if last is not None and t - last > tolerance_s + _EPS_S:
            yield piece
            piece = ([], [])
        piece[side].append(i)
        last = t
    if merged:
        yield piece


def _assign(manual: list[CountEvent], automatic: list[CountEvent],
            tolerance_s: float) -> list[tuple[int, int]]:
    """Optimal pairs (indices) of one piece, by the lexicographic objective of the module."""
    if not manual or not automatic:
        return []
    t_m = np.array([e.time_s for e in manual])[:, None]
    t_a = np.array([e.time_s for e in automatic])[None, :]
    dt = np.abs(t_a - t_m)
    allowed = dt <= tolerance_s + _EPS_S
    codes = {c: i for i, c in enumerate({e.class_name for e in manual + automatic})}
    mismatch = (np.array([codes[e.class_name] for e in manual])[:, None]
                != np.array([codes[e.class_name] for e in automatic])[None, :])
    n = min(len(manual), len(automatic))
    time_budget = n * (tolerance_s + _EPS_S)  # the most all time differences can add up to
    w_class = time_budget + 1.0  # one fewer confusion beats any time saving
    w_pair = n * w_class + time_budget + 1.0  # one more pair beats any class or time saving
    cost = np.where(allowed, dt + w_class * mismatch - w_pair, 0.0)  # 0: as good as unpaired
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if allowed[r, c]]


def match_counts(manual: Iterable[CountEvent], automatic: Iterable[CountEvent],
                 tolerance_s: float = DEFAULT_TOLERANCE_S) -> CountMatching:
    """Match automatic to manual events (see the module's docstring for the rule)."""
    if tolerance_s < 0:
        raise ValueError(f"tolerance must be >= 0 s, got {tolerance_s}")
    groups: dict[tuple[str, str], tuple[list[CountEvent], list[CountEvent]]] = {}
    for side, events in enumerate((manual, automatic)):
        for e in events:
            groups.setdefault(e.group, ([], []))[side].append(e)
    pairs: list[MatchedPair] = []
    missed: list[CountEvent] = []
    extra: list[CountEvent] = []
    for key in sorted(groups):
        m_all, a_all = (_by_time(x) for x in groups[key])
        for m_idx, a_idx in _pieces(m_all, a_all, tolerance_s):
            m = [m_all[i] for i in m_idx]
            a = [a_all[i] for i in a_idx]
            chosen = _assign(m, a, tolerance_s)
            pairs += [MatchedPair(m[r], a[c]) for r, c in chosen]
            used_m = {r for r, _ in chosen}
            used_a = {c for _, c in chosen}
            missed += [e for i, e in enumerate(m) if i not in used_m]
            extra += [e for i, e in enumerate(a) if i not in used_a]
    return CountMatching(tolerance_s, tuple(sorted(pairs, key=lambda p: p.manual.time_s)),
                         tuple(_by_time(missed)), tuple(_by_time(extra)))
