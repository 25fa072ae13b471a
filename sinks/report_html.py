"""report.html: a self-contained page of a review's results that opens offline.

Plots are drawn with matplotlib (Agg) and inlined as SVG; the styles are inline too, so the
file can be mailed or archived on its own. Sections appear when the stream has the data:
flow per lane and class always, the movement matrix with `turning:`, the speed distribution
with `calibration:`, wrong-way and dwell tables when there are any.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lanewatch.sinks.alert_list import Alert  # noqa: E402
from lanewatch.sinks.movement_sheet import MovementSheet  # noqa: E402
from lanewatch.sinks.traffic_tables import TrafficTables  # noqa: E402
from lanewatch.trackers.analytics.traffic_stats import (  # noqa: E402
    ALL_CLASSES,
    MIN_SAMPLE,
    object_noun,
)

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d2630; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; font-size: 1.25em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #c9d1d9; padding: .25em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef2f6; } figure { margin: 1em 0; } figcaption { color: #56606b; }
.meta { color: #56606b; } .empty { color: #8a949e; font-style: italic; }
"""


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG is inline


def _figure(fig, caption: str, kind: str) -> str:
    return (f'<figure class="plot" data-plot="{kind}">{_svg(fig)}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>"
                                    for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def flow_plot(crossings, lanes: list[str], duration_s: float,
              start_time: datetime | None = None) -> str:
    """Cumulative crossings over time, one line per lane (on a clock-time axis when the
    recording's start is known), and totals per lane and class."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=(3, 2))
    for lane in lanes:
        times = sorted(e.time_s for e in crossings if e.lane == lane)
        x = [0.0, *times, max(duration_s, times[-1] if times else 0.0)]
        if start_time is not None:
            x = [start_time + timedelta(seconds=t) for t in x]
        left.step(x, [0, *range(1, len(times) + 1), len(times)], where="post", label=lane)
    if start_time is not None:
        left.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=start_time.tzinfo))
        left.tick_params(axis="x", labelrotation=30)
    left.set_xlabel("time of day" if start_time is not None else "time (s)")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))  # vehicles come whole
    left.set_ylabel("crossings (cumulative)")
    left.legend(fontsize=8, loc="upper left")
    left.grid(alpha=0.3)
    classes = sorted({e.class_name for e in crossings})
    bottom = np.zeros(len(lanes))
    for cls in classes:
        n = np.array([sum(1 for e in crossings if e.lane == lane and e.class_name == cls)
                      for lane in lanes])
        right.bar(lanes, n, bottom=bottom, label=cls)
        bottom += n
    right.set_ylabel("crossings")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    if classes:
        right.legend(fontsize=8)
    right.tick_params(axis="x", labelrotation=30)
    return _figure(fig, "Flow per lane over time, and per lane and class", "flow")


def movement_plot(zones: list[str], pairs: list[tuple[str, str, str, int]]) -> str:
    """Origin x destination matrix of counted movements."""
    index = {z: i for i, z in enumerate(zones)}
    matrix = np.zeros((len(zones), len(zones)), int)
    for _, origin, destination, n in pairs:
        matrix[index[origin], index[destination]] += n
    fig, ax = plt.subplots(figsize=(1.2 * len(zones) + 2.5, 1.0 * len(zones) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(zones)), zones)
    ax.set_yticks(range(len(zones)), zones)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center",
                color="white" if n > matrix.max() / 2 else "black")
    return _figure(fig, "Turning movements: origin x destination", "movements")


def speed_plot(crossings, lanes: list[str], noun: str = "vehicles") -> str:
    """Distribution of spot speeds per lane, with the 85th percentile of all (when there are
    enough speeds for one)."""
    speeds = [e for e in crossings if e.speed_kmh is not None]
    values = [e.speed_kmh for e in speeds]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bins = np.linspace(0, max(values) * 1.1 if values else 1.0, 20)
    data = [[e.speed_kmh for e in speeds if e.lane == lane and e.speed_kmh is not None]
            for lane in lanes]
    ax.hist(data, bins=bins, stacked=True, label=lanes)
    if len(values) >= MIN_SAMPLE:
        p85 = float(np.percentile(values, 85))
        ax.axvline(p85, color="black", linestyle="--", label=f"85th percentile {p85:.0f} km/h")
    ax.set_xlabel("speed at the counting line (km/h)")
    ax.set_ylabel(noun)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _figure(fig, "Spot speeds per lane", "speeds")


@dataclass(frozen=True)
class ReportData:
    """Everything report.html shows (rows as the CSV tables have them)."""

    summary: dict
    crossings: list  # CrossingEvent
    counts: list  # IntervalCount of lanes
    movements: list  # IntervalCount of movements (lane = movement name)
    movement_pairs: list[tuple[str, str, str, int]]  # (movement, from, to, total)
    zones: list[str]
    lane_speeds: list  # LaneSpeedRow
    dwell: list  # DwellRow
    wrong_way: list  # WrongWayEvent
    traffic: TrafficTables | None = None
    alerts: list[Alert] = field(default_factory=list)
    movement_sheet: MovementSheet | None = None


def _span(t: TrafficTables, start_s: float, end_s: float) -> str:
    """An interval as clock times when the recording's start is known, else video minutes."""
    start, end = t.clock(start_s), t.clock(end_s)
    if start is None or end is None:
        return f"{start_s / 60:g}-{end_s / 60:g} min"
    return f"{start:%H:%M:%S}-{end:%H:%M:%S}"


def traffic_section(t: TrafficTables) -> str:
    """Flow rates, the peak hour, time occupancy and headways (the figures of flow.csv,
    occupancy.csv and headways.csv)."""
    parts = ["<h2>Flow, peak hour, occupancy and headways</h2>"]
    if t.start_time is not None:
        parts.append(f'<p class="meta">Clock times from {t.start_time:%Y-%m-%d %H:%M:%S %Z}, '
                     "the recording's start (`process --start-time` sets it when the video's "
                     "creation_time is not when it was recorded).</p>")
    overall = next((p for p in t.peaks if p.lane is None), None)
    if overall is None:
        parts.append(f'<p class="meta">No peak hour: {t.duration_s / 60:.1f} minutes of video; '
                     "the peak hour and its peak-hour factor need at least 60.</p>")
    else:
        parts.append(f"<p>Peak hour {_span(t, overall.start_s, overall.end_s)}: "
                     f"{overall.vehicles} in the hour, at most {overall.busiest_quarter} in "
                     f"15 minutes; peak-hour factor {overall.phf}.</p>")
        parts.append(_table(["lane", "direction", "peak hour", "volume",
                             "busiest 15 min", "PHF"],
                            [[p.lane, p.direction, _span(t, p.start_s, p.end_s),
                              p.vehicles, p.busiest_quarter, p.phf]
                             for p in t.peaks if p.lane is not None]))
    parts.append("<h3>Flow per 15 minutes</h3>")
    if any(b.partial for b in t.flow):
        parts.append('<p class="meta">partial: the video covers only part of the interval; '
                     "its hourly rate is over the part covered.</p>")
    classes: dict[tuple[str, str, float], list[str]] = {}
    for b in t.flow:
        if b.class_name != ALL_CLASSES and b.vehicles:
            classes.setdefault((b.lane, b.direction, b.start_s), []).append(
                f"{b.class_name} {b.vehicles}")
    parts.append(_table(["interval", "lane", "direction", "count", "by class", "PCU",
                         "per hour", ""],
                        [[_span(t, b.start_s, b.end_s), b.lane, b.direction,
                          b.vehicles, ", ".join(classes.get((b.lane, b.direction, b.start_s),
                                                            [])), b.pcu,
                          None if b.per_hour is None else round(b.per_hour),
                          "partial" if b.partial else ""] for b in t.totals()]))
    parts.append("<h3>Time occupancy at the counting lines</h3>")
    parts.append('<p class="meta">the share of time an object is over the line, as a loop '
                 "detector reports it</p>")
    parts.append(_table(["interval (s)", "lane", "occupied (s)", "observed (s)", "occupancy %"],
                        [[f"{r.interval_start_s:g}-{r.interval_end_s:g}", r.lane, r.occupied_s,
                          r.observed_s, r.occupancy_pct] for r in t.occupancy]))
    parts.append("<h3>Gaps at the counting lines (s)</h3>")
    parts.append('<p class="meta">the time a line stays vacant between two objects</p>')
    parts.append(_table(["lane", "gaps", "mean", "median", "15th pct", "85th pct", "shortest",
                         ""],
                        [[g.lane, g.gaps, g.mean_s, g.median_s, g.p15_s, g.p85_s, g.min_s,
                          f"fewer than {MIN_SAMPLE} gaps: no statistics"
                          if g.small_sample else ""] for g in t.gaps]))
    parts.append("<h3>Headways (s)</h3>")
    parts.append(_table(["lane", "direction", "count", "mean", "median", "15th pct",
                         "85th pct", "shortest", ""],
                        [[h.lane, h.direction, h.vehicles, h.mean_s, h.median_s, h.p15_s,
                          h.p85_s, h.min_s,
                          f"fewer than {MIN_SAMPLE} headways: no statistics"
                          if h.small_sample else ""] for h in t.headways]))
    return "".join(parts)


def sheet_section(sheet: MovementSheet) -> str:
    """The turning-movement count sheet: a header row per approach, one per movement and
    class, then the 15-minute rows, totals, the peak hour and its PHF."""
    rows = sheet.csv_rows()
    spans = [(a, sum(c.approach == a for c in sheet.columns) + 1) for a in sheet.approaches]
    head = ('<tr><th rowspan="2">interval</th>'
            + "".join(f'<th colspan="{n}">{html.escape(a)}</th>' for a, n in spans)
            + '<th rowspan="2">total</th></tr><tr>'
            + "".join("".join(f"<th>{html.escape(c.movement)}<br>{html.escape(c.class_name)}"
                              "</th>" for c in sheet.columns if c.approach == a)
                      + "<th>all</th>" for a, _ in spans) + "</tr>")
    n = len(sheet.columns)
    body = []
    for row in rows[1:]:
        by_approach = [row[3 + i] for i in range(n)]
        cells = [row[0]]
        for k, a in enumerate(sheet.approaches):
            cells += [v for v, c in zip(by_approach, sheet.columns) if c.approach == a]
            cells.append(row[3 + n + k])
        cells.append(row[-1])
        partial = ' class="meta"' if row[2] == 1 else ""
        body.append(f"<tr{partial}>" + "".join(f"<td>{html.escape(str(v))}</td>"
                                               for v in cells) + "</tr>")
    note = ('<p class="meta">grey rows: the video covers only part of the interval</p>'
            if any(sheet.partial) else "")
    return ("<h3>Turning-movement count sheet (15 minutes)</h3>" + note
            + f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")


def write_report(path: Path, data: ReportData) -> None:
    """Write report.html (see the module docstring)."""
    summary = data.summary
    lanes = list(summary["lanes"])
    noun = object_noun(summary["classes"])  # "objects" when people are counted too
    parts = [f"<h1>lanewatch report: {html.escape(summary['stream'])}</h1>",
             f'<p class="meta">{html.escape(summary["video"])}: {summary["frames"]} frames, '
             f'{summary["video_duration_s"]} s, status {html.escape(summary["status"])}; '
             f'model {html.escape(Path(summary["model"]).name)}; intervals of '
             f'{summary["interval_s"]:g} s</p>', "<h2>Counts</h2>"]
    directions = sorted({d for v in summary["lanes"].values() for d in v["by_direction"]})
    parts.append(_table(["lane", "total", *directions],
                        [[lane, v["total"], *(v["by_direction"].get(d, "") for d in directions)]
                         for lane, v in summary["lanes"].items()]))
    parts.append(flow_plot(data.crossings, lanes, summary["video_duration_s"],
                           data.traffic.start_time if data.traffic is not None else None))
    parts.append("<h3>Per interval</h3>")
    parts.append(_table(["interval start (s)", "end (s)", "lane", "class", "direction", "count"],
                        [[f"{r.interval_start_s:g}", f"{r.interval_end_s:g}", r.lane,
                          r.class_name, r.direction, r.count] for r in data.counts if r.count]))
    if data.traffic is not None:
        parts.append(traffic_section(data.traffic))
    if "movements" in summary:
        parts.append("<h2>Turning movements</h2>")
        parts.append(movement_plot(data.zones, data.movement_pairs))
        parts.append(_table(["movement", "from", "to", "total"],
                            [list(p) for p in data.movement_pairs]))
        parts.append(_table(["interval start (s)", "end (s)", "movement", "class", "count"],
                            [[f"{r.interval_start_s:g}", f"{r.interval_end_s:g}", r.lane,
                              r.class_name, r.count] for r in data.movements if r.count]))
        if data.movement_sheet is not None:
            parts.append(sheet_section(data.movement_sheet))
        unfinished = ", ".join(f"{k} {v}" for k, v in summary["unfinished_by_origin"].items())
        parts.append("<p>Tracks that entered but were never seen leaving, by origin: "
                     f"{html.escape(unfinished or 'none')}</p>")
    if "speeds" in summary:
        s = summary["speeds"]
        parts.append("<h2>Speeds</h2>")
        parts.append(f"<p>{s['vehicles']} {noun} with a spot speed at the counting lines: "
                     f"mean {s['mean_kmh']} km/h, 85th percentile {s['p85_kmh']} km/h; "
                     f"{s['rejected']} implausible speeds rejected.</p>")
        parts.append(speed_plot(data.crossings, lanes, noun))
        parts.append(_table(["interval start (s)", "lane", noun, "mean km/h",
                             "85th pct km/h", "rejected"],
                            [[f"{r.interval_start_s:g}", r.lane, r.vehicles, r.mean_kmh,
                              r.p85_kmh, r.rejected] for r in data.lane_speeds]))
    parts.append("<h2>Dwell</h2>")
    parts.append(_table(["interval start (s)", "lane or zone", noun, "mean s", "max s"],
                        [[f"{r.interval_start_s:g}", r.area, r.vehicles, round(r.mean_s, 1),
                          round(r.max_s, 1)] for r in data.dwell]))
    parts.append(f"<h2>Alerts ({len(data.alerts)})</h2>")
    clock = data.traffic.clock if data.traffic is not None else (lambda _: None)
    parts.append(_table(["time (s)", "clock", "alert", "lane or zone", "track", "class",
                         "detail"],
                        [[f"{a.time_s:.2f}", "" if clock(a.time_s) is None else
                          f"{clock(a.time_s):%H:%M:%S}", a.kind.replace("_", " "), a.where,
                          a.track_id, a.class_name, a.detail] for a in data.alerts]))
    parts.append("<h2>Wrong-way driving</h2>")
    parts.append(_table(["time (s)", "lane", "track", "class", "distance"],
                        [[f"{e.time_s:.2f}", e.lane, e.track_id, e.class_name,
                          f"{e.distance:g} {e.unit}"] for e in data.wrong_way]))
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>lanewatch report: {html.escape(summary['stream'])}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    path.write_text(page, encoding="utf-8")
