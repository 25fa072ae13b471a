"""validation.html: the validation of a review against a manual count, as a page that opens
offline (styles and thumbnails inline, like report.html), and as a section of the run's own
report.html (`add_to_report`: replaced, not repeated, when the run is validated again).

Each unmatched event (missed or extra) gets a thumbnail of the run's video at its time, when
the video named in summary.json can be opened: at most `max_thumbnails` of them (seeking costs
a keyframe's decode each), and none, with a note, when the video is missing.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from pathlib import Path

from lanewatch.sinks.report_html import _STYLE, _table
from lanewatch.sinks.validation_input import ReviewRun
from lanewatch.sinks.validation_report import describe_event
from lanewatch.trackers.evaluation.count_matching import CountEvent
from lanewatch.trackers.evaluation.count_metrics import AIC_SEGMENTS, CountValidation

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 320
DEFAULT_MAX_THUMBNAILS = 50


def _video_path(run: ReviewRun) -> Path | None:
    """The run's video: as summary.json names it (relative to where `process` ran), or
    relative to the run folder."""
    if not run.video:
        return None
    path = Path(run.video)
    for candidate in (path, run.run_dir / path):
        if candidate.is_file():
            return candidate
    return None


def grab_thumbnails(video: Path, times: list[float],
                    width: int = THUMBNAIL_WIDTH) -> dict[float, bytes]:
    """JPEG images of the video at these times (seconds from its start), `width` pixels wide."""
    import av  # only when thumbnails are asked for

    out: dict[float, bytes] = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        for t in sorted(set(times)):
            container.seek(int((t + start) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None and frame.time - start + 1e-3 < t:
                    continue  # decoding on from the keyframe before t
                image = frame.to_image()
                image.thumbnail((width, width * image.height // max(image.width, 1)))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=80)
                out[t] = buffer.getvalue()
                break
    return out


def _thumbnails(run: ReviewRun, events: list[CountEvent],
                max_thumbnails: int) -> tuple[dict[float, bytes], list[str]]:
    if max_thumbnails <= 0 or not events:
        return {}, []
    video = _video_path(run)
    if video is None:
        return {}, [f"no thumbnails: the run's video ({run.video or 'not named in summary.json'})"
                    " is not found"]
    chosen = events[:max_thumbnails]
    notes = ([f"thumbnails of the first {max_thumbnails} of {len(events)} unmatched events"]
             if len(events) > max_thumbnails else [])
    try:
        return grab_thumbnails(video, [e.time_s for e in chosen]), notes
    except Exception as err:  # noqa: BLE001 - a broken video costs the pictures, not the page
        log.warning("thumbnails from %s failed: %s", video, err)
        return {}, [*notes, f"no thumbnails: cannot read {video}: {err}"]


def _unmatched_table(kinds: list[tuple[str, CountEvent]], pictures: dict[float, bytes]) -> str:
    if not kinds:
        return '<p class="empty">none: every count was matched</p>'
    rows = []
    for kind, e in kinds:
        jpeg = pictures.get(e.time_s)
        img = (f'<img alt="frame at {e.time_s:.2f} s" src="data:image/jpeg;base64,'
               f'{base64.b64encode(jpeg).decode()}">' if jpeg else "")
        cells = [kind, describe_event(e)]
        rows.append(f'<tr data-kind="{kind}">'
                    + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    + f"<td>{img}</td></tr>")
    return ("<table><thead><tr><th>kind</th><th>event</th><th>video</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def validation_section(v: CountValidation, run: ReviewRun, manual_csv: Path,
                       max_thumbnails: int = DEFAULT_MAX_THUMBNAILS) -> tuple[str, list[str]]:
    """The validation as an HTML section, and notes on what it left out."""
    m, o = v.matching, v.overall
    unmatched = sorted([("missed", e) for e in m.missed] + [("extra", e) for e in m.extra],
                       key=lambda k: k[1].time_s)
    pictures, notes = _thumbnails(run, [e for _, e in unmatched], max_thumbnails)

    def label(x):
        return "all" if x is None else x

    score = "n/a" if v.effectiveness is None else f"{v.effectiveness:.3f}"
    parts = [
        '<section id="validation"><h2>Validation against a manual count</h2>',
        f'<p class="meta">{html.escape(str(manual_csv))}; time tolerance {m.tolerance_s:g} s '
        f"(inclusive); intervals of {v.interval_s:g} s</p>",
        f"<p>{o.manual} counted by hand, {o.automatic} automatically: {o.matched} matched, "
        f"{o.confused} class confusion(s), {o.missed} missed, {o.extra} extra. Precision "
        f"{o.precision:.3f}, recall {o.recall:.3f}, F1 {o.f1:.3f}. AI City Challenge "
        f"effectiveness {score}.</p>",
        _table(["lane", "direction", "class", "by hand", "automatic", "matched", "confused",
                "missed", "extra", "precision", "recall"],
               [[label(r.lane), label(r.direction), label(r.class_name), r.manual, r.automatic,
                 r.matched, r.confused, r.missed, r.extra, f"{r.precision:.3f}",
                 f"{r.recall:.3f}"] for r in v.rows]),
        "<h3>Classes: by hand x automatic</h3>",
        _table(["by hand", "automatic", "vehicles"], [list(c) for c in v.confusion]),
        "<h3>Per interval</h3>",
        _table(["start (s)", "end (s)", "lane", "direction", "class", "by hand", "automatic",
                "error", "error %"],
               [[f"{r.start_s:g}", f"{r.end_s:g}", r.lane, r.direction, r.class_name, r.manual,
                 r.automatic, r.abs_error, "" if r.pct_error is None else f"{r.pct_error:.1f}"]
                for r in v.intervals if r.class_name is not None and (r.manual or r.automatic)]),
        f"<h3>Cumulative counts ({AIC_SEGMENTS} segments, AI City Challenge)</h3>",
        _table(["lane", "direction", "class", "by hand", "automatic", "wRMSE", "nwRMSE"],
               [[r.lane, r.direction, r.class_name, r.manual, r.automatic, f"{r.wrmse:.3f}",
                 f"{r.nwrmse:.3f}"] for r in v.wrmse]),
        "<h3>Unmatched events</h3>",
        "".join(f'<p class="meta">{html.escape(n)}</p>' for n in notes),
        _unmatched_table(unmatched, pictures),
        "<h3>Matched events</h3>",
        _table(["by hand (s)", "automatic (s)", "difference (s)", "lane", "direction",
                "class by hand", "automatic class"],
               [[f"{p.manual.time_s:.2f}", f"{p.automatic.time_s:.2f}",
                 f"{p.time_error_s:+.2f}", p.manual.lane, p.manual.direction,
                 p.manual.class_name, p.automatic.class_name] for p in m.pairs]),
        "</section>",
    ]
    return "".join(parts), notes


def write_validation_html(path: Path, v: CountValidation, run: ReviewRun, manual_csv: Path,
                          max_thumbnails: int = DEFAULT_MAX_THUMBNAILS
                          ) -> tuple[str, tuple[str, ...]]:
    """Write validation.html; returns its section (for report.html) and the notes on what it
    left out (thumbnails)."""
    section, notes = validation_section(v, run, manual_csv, max_thumbnails)
    title = f"lanewatch validation: {html.escape(run.stream or str(run.run_dir))}"
    path.write_text("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                    f"<title>{title}</title><style>{_STYLE}</style></head><body>"
                    f"<h1>{title}</h1>{section}</body></html>", encoding="utf-8")
    return section, tuple(notes)


_SECTION = re.compile(r'<section id="validation">.*?</section>', re.DOTALL)


def add_to_report(report: Path, section: str) -> bool:
    """Put the validation section into a run's report.html, before its end, or in place of
    the section an earlier validation left there. False when there is no report.html (a run
    from before reports existed, or whose report failed): validation.html still has it all."""
    if not report.is_file():
        return False
    page = report.read_text(encoding="utf-8")
    if _SECTION.search(page):
        page = _SECTION.sub(lambda _: section, page, count=1)
    elif "</body>" in page:
        page = page.replace("</body>", section + "</body>", 1)
    else:
        return False
    report.write_text(page, encoding="utf-8")
    return True
