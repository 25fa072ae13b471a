"""Coordinate descent over the tuned settings, scored by a caller's function.

Starting from the user's config, each round tries every value of one dimension with the others
held, keeps the best, and goes on to the next dimension; rounds repeat until one changes
nothing (or the budget of candidates is spent). Among values of equal quality (the score's
`key`: F1, then the total count error) the search prefers, in order:

1. the user's own value (fewest changes from the user's config);
2. for numbers on a scale, the middle of the widest run of equally good values: on a short
   clip a threshold at the edge of the good range is one vehicle away from a miss (so a
   value the search moved to earlier moves again when it sits at the edge of a wider run);
3. otherwise the value it already holds, else the first in the dimension's list (the
   cheaper, more conservative choices are listed first).

A last pass reverts every change whose revert loses nothing, the latest dimensions first,
so the report lists only the changes the counts need. When the budget runs out first, the
best candidate evaluated so far is taken (among equals, the one with the fewest changes).
The search knows nothing of videos or models: `score` maps a candidate (dimension name ->
value) to a score, or None when the combination is not a valid config; tests drive it with
synthetic functions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from lanewatch.stream.tune.space import Dimension

MAX_ROUNDS = 4


class Scored(Protocol):
    """What the search needs of a score."""

    @property
    def key(self) -> tuple: ...


@dataclass(frozen=True)
class Trial:
    """One candidate evaluated: its changes from the user's config and its score."""

    changes: tuple[tuple[str, Any], ...]
    score: Scored | None  # None: not a valid config
    dimension: str  # what the search was varying ("" for the user's config)


@dataclass(frozen=True)
class SearchResult:
    """The best candidate found and how it was found."""

    values: dict[str, Any]  # every dimension's chosen value
    changes: tuple[tuple[str, Any, Any], ...]  # (name, user's value, chosen value)
    score: Scored
    baseline: Scored
    trials: tuple[Trial, ...]
    rounds: int
    budget_exhausted: bool


class _BudgetSpent(Exception):
    pass


def _frozen(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


def plateau_choice(values: tuple, good: set, own: Any) -> Any:
    """The middle of the longest run of consecutive `good` values (ties: the run nearest to
    the user's own value; in a run of even length, the middle value nearer to it)."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if v in good:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    own_i = values.index(own) if own in values else 0

    def distance(i: int) -> int:
        return abs(i - own_i)

    run = max(runs, key=lambda r: (len(r), -min(distance(i) for i in r)))
    middle = [run[(len(run) - 1) // 2], run[len(run) // 2]]
    return values[min(middle, key=distance)]


def choose(dim: Dimension, keys: dict[Any, tuple | None], current: Any, own: Any) -> Any:
    """The value to keep for one dimension, given each tried value's score key (None:
    invalid); see the module docstring for the order of preference."""
    valid = {v: k for v, k in keys.items() if k is not None}
    if not valid:
        return current
    best = max(valid.values())
    top = [v for v in dim.values if v in valid and valid[v] == best]
    if own in top:
        return own
    if dim.ordered:
        return plateau_choice(dim.values, set(top), own)
    if current in top:
        return current
    return top[0]


def coordinate_descent(dims: list[Dimension], own: dict[str, Any],
                       score: Callable[[dict[str, Any]], Scored | None],
                       budget: int, on_trial: Callable[[Trial], None] | None = None
                       ) -> SearchResult:
    """Search `dims` from the user's values `own` with at most `budget` evaluations (the
    user's config included; repeats are remembered, not re-evaluated)."""
    own = {k: _frozen(v) for k, v in own.items()}
    memo: dict[tuple, Scored | None] = {}
    trials: list[Trial] = []

    def evaluate(values: dict[str, Any], dimension: str) -> Scored | None:
        changes = tuple(sorted((k, v) for k, v in values.items() if own[k] != v))
        if changes in memo:
            return memo[changes]
        if len(memo) >= budget:
            raise _BudgetSpent
        result = score(dict(changes))
        memo[changes] = result
        trial = Trial(changes, result, dimension)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        return result

    baseline = evaluate(dict(own), "")
    if baseline is None:
        raise ValueError("the user's own config is not valid")
    current = dict(own)
    rounds, spent = 0, False
    try:
        for _ in range(MAX_ROUNDS):
            rounds += 1
            changed = False
            for dim in dims:
                keys = {}
                for value in dim.values:
                    result = evaluate({**current, dim.name: value}, dim.name)
                    keys[value] = None if result is None else result.key
                choice = choose(dim, keys, current[dim.name], own[dim.name])
                if choice != current[dim.name]:
                    current[dim.name], changed = choice, True
            if not changed:
                break
        best_key = evaluate(current, "").key
        # The fewest changes that keep the best score. Later changes were made on top of the
        # earlier ones (a lower min_hits making up for a confidence still too high): they
        # are tried first, so the earlier, more direct fix is the one kept.
        for dim in reversed(dims):
            if current[dim.name] != own[dim.name]:
                reverted = evaluate({**current, dim.name: own[dim.name]}, f"revert {dim.name}")
                if reverted is not None and reverted.key >= best_key:
                    current[dim.name] = own[dim.name]
                    best_key = reverted.key
    except _BudgetSpent:  # the best candidate seen, the fewest changes among equals
        spent = True
        chosen = max((c for c, s in memo.items() if s is not None),
                     key=lambda c: (memo[c].key, -len(c)))
        current = {**own, **dict(chosen)}
    final = memo.get(tuple(sorted((k, v) for k, v in current.items() if own[k] != v)))
    if final is None:  # cannot happen: every value held was evaluated and valid
        raise RuntimeError("the search ended on a candidate it did not score")
    changes = tuple((d.name, own[d.name], current[d.name]) for d in dims
                    if current[d.name] != own[d.name])
    return SearchResult(current, changes, final, baseline, tuple(trials), rounds, spent)
