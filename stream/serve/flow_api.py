"""GET /api/streams/{id}/flow: crossings per lane in short bins, for the dashboard's chart.

    ?minutes=15&bin_s=30   the window (at most 1440 minutes, 2000 bins), ending with the bin
                           that holds now (partial: it is still filling)

Besides the counts, the reply says where the chart's data really starts (`first_s`: the
service's start, or an earlier stored crossing of this stream, never bins before anything was
watched, which would draw invented zeros), which bin is partial (`partial_s`) and each lane's
colour (`colors`: the palette of the video overlays, sinks/overlay_layout.py).
"""

from __future__ import annotations

import time
from typing import Any

from lanewatch.sinks.overlay_layout import lane_color_hex
from lanewatch.sinks.store import CountStore
from lanewatch.stream.pipeline.running_stream import RunningStream


class FlowQueryError(ValueError):
    """The query cannot be answered; the message says how to fix it."""


def flow_window(query, now: float) -> tuple[float, float, int]:
    """(start, bin_s, bins) of ?minutes=&bin_s=: bins aligned to bin_s, the last holds now."""
    try:
        minutes = float(query.get("minutes", 15))
        bin_s = float(query.get("bin_s", 30))
    except ValueError:
        raise FlowQueryError("minutes and bin_s are numbers") from None
    if not (0 < minutes <= 1440 and 1 <= bin_s <= 3600 and minutes * 60 / bin_s <= 2000):
        raise FlowQueryError("minutes must be in (0, 1440], bin_s in [1, 3600], "
                             "and at most 2000 bins")
    bins = max(int(minutes * 60 // bin_s), 1)
    return (now // bin_s - bins + 1) * bin_s, bin_s, bins


def flow_figures(runner: RunningStream, store: CountStore, query, started_s: float,
                 now: float | None = None) -> dict[str, Any]:
    """The flow reply of one stream (see the module's docstring)."""
    now = time.time() if now is None else now
    start, bin_s, bins = flow_window(query, now)
    found = store.flow(runner.stream.id, start, bin_s)
    configured = [lane.name for lane in runner.stream.lanes]
    names = [lane.name for lane in runner.stream.lanes if lane.line is not None]
    names += sorted(set(found) - set(names))
    # Lanes no longer configured (their crossings are stored) get the colours after the rest.
    order = configured + [n for n in names if n not in configured]
    first_data = min((start + b * bin_s for lane in found.values() for b in lane), default=now)
    first = max(start, (min(started_s, first_data) // bin_s) * bin_s)
    return {
        "stream": runner.stream.id, "start_s": start, "bin_s": bin_s, "now_s": now,
        "first_s": first, "partial_s": start + (bins - 1) * bin_s,
        "service_started_s": started_s,
        "colors": {name: lane_color_hex(order.index(name)) for name in names},
        "lanes": {name: [found.get(name, {}).get(b, 0) for b in range(bins)] for name in names}}
