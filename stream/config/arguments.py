"""Types of command-line arguments, with messages that say what was expected (argparse prints
them as `argument --x: ...`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime


def whole_number(minimum: int) -> Callable[[str], int]:
    """An integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def number(text: str) -> float:
    """Any finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def non_negative(text: str) -> float:
    """A number >= 0."""
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive(text: str) -> float:
    """A number > 0."""
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number from 0 to 1 (0.95 for 95%)."""
    value = non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"a fraction between 0 and 1 (0.95 for 95%), got {text}")
    return value


positive_int = whole_number(1)


def clock_time(text: str) -> datetime:
    """An ISO 8601 date and time, e.g. 2026-03-02T07:30:00+01:00 (no offset: local time)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date and time such as 2026-03-02T07:30:00 or 2026-03-02T07:30:00+01:00,"
            f" got '{text}'") from None
    return when if when.tzinfo else when.astimezone()
