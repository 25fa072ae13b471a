"""What `lanewatch count` counts on: one video, one stream's lanes, and the keys of the board.

A `CountSession` holds the video's frame table (sources/frame_reader.py), the stream's lanes
resolved to the video's pixels exactly as the review resolves them, one key per countable
lane and direction (`1`..`9`, `0`), one letter per class, and checks the entries the page
posts before they are written as a manual-count CSV (sinks/manual_count_csv.py).
"""

from __future__ import annotations

import bisect
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanewatch.sinks.errors import ConfigError, LanewatchError
from lanewatch.sinks.json_input import shorten
from lanewatch.sinks.manual_count_csv import ManualEntry, format_time, manual_count_csv
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import Config
from lanewatch.stream.sources.frame_reader import FrameReader
from lanewatch.trackers.analytics.lanes import Lane, resolve_lanes

LANE_KEYS = "1234567890"  # in lane order, each lane's counted directions in report order
# The model's names for road users (COCO), offered when the config does not restrict classes.
DEFAULT_CLASSES = ("car", "truck", "bus", "motorcycle", "bicycle", "person")
MAX_ENTRIES = 200_000


class EntryError(LanewatchError):
    """Entries posted by the page that cannot be saved; the message says which and why."""


@dataclass(frozen=True)
class CountKey:
    """A key of the board: one lane and direction."""

    key: str | None  # None past the tenth (the page offers a button)
    lane: str
    direction: str  # the lane's label of that direction (in_label / out_label)
    side: str  # "in" or "out": which way across the line, for the arrow drawn


@dataclass(frozen=True)
class ClassKey:
    """A letter that selects the class of the next counts."""

    key: str | None
    name: str


def class_keys(names: tuple[str, ...]) -> tuple[ClassKey, ...]:
    """A letter per class: its first letter if free, else another of its letters, else any
    free letter (`c` car, `t` truck, `b` bus, `m` motorcycle, `p` person ...)."""
    taken: set[str] = set()
    keys = []
    for name in names:
        letters = [c for c in name.lower() if c in string.ascii_lowercase]
        choice = next((c for c in letters + list(string.ascii_lowercase) if c not in taken),
                      None)
        if choice is not None:
            taken.add(choice)
        keys.append(ClassKey(choice, name))
    return tuple(keys)


def lane_keys(lanes: list[Lane]) -> tuple[CountKey, ...]:
    """One key per counted (lane, direction), lanes in config order."""
    pairs = []
    for lane in lanes:
        for label in lane.labels():  # empty for a lane without a counting line
            pairs.append((lane.name, label, "in" if label == lane.in_label else "out"))
    return tuple(CountKey(LANE_KEYS[i] if i < len(LANE_KEYS) else None, *p)
                 for i, p in enumerate(pairs))


def _points(array) -> list[list[float]] | None:
    return None if array is None else [[round(float(x), 2), round(float(y), 2)]
                                       for x, y in array]


class CountSession:
    """A video and a config's stream, ready to count on. Raises LanewatchError (a clear
    message naming the fix) for a bad video, config, stream or lanes."""

    def __init__(self, video: Path, config_path: Path, stream_id: str | None = None,
                 output: Path | None = None):
        config = load_config(config_path)
        self.stream = config.stream(stream_id)
        if output is not None:
            _check_output(output)
        self.video, self.config_path, self.output = video, config_path, output
        self.reader = FrameReader(video)  # SourceError for a missing or unreadable file
        try:
            self._prepare(config)
        except BaseException:
            self.reader.close()
            raise

    def _prepare(self, config: Config) -> None:
        info = self.reader.info
        try:
            self.lanes = resolve_lanes(self.stream.lanes, self.stream.coordinates,
                                       info.width, info.height)
        except ValueError as err:
            raise ConfigError(f"{self.config_path}: streams({self.stream.id}).lanes do not "
                              f"fit {self.video} ({info.width}x{info.height}): {err}") from None
        self.keys = lane_keys(self.lanes)
        if not self.keys:
            raise ConfigError(
                f"{self.config_path}: stream '{self.stream.id}' has no lane with a counting "
                "line, so there is nothing to count by hand: give a lane a `line:` (two points "
                "across it; the dashboard's lane editor draws one)"
                + ("" if len(config.streams) == 1 else ", or pick another stream with --stream"))
        classes = tuple(config.model.classes or ())
        self.classes_from_config = bool(classes)
        self.classes = class_keys(classes or DEFAULT_CLASSES)
        self.times = tuple(format_time(self.reader.table.time_s(n))
                           for n in range(len(self.reader)))
        # Counting goes on where the file left off (when the browser kept nothing newer).
        self.saved = (self._read_saved(self.output)
                      if self.output is not None and self.output.is_file() else [])

    def comments(self) -> list[str]:
        """The CSV's `#` lines: what was counted, on which video and lanes."""
        info = self.reader.info
        return [f"counted by hand with lanewatch count on {self.video} ({len(self.times)} "
                f"frames, {info.fps:.3f} frames/s)",
                f"lanes of stream '{self.stream.id}' in {self.config_path}"]

    def metadata(self, frame_url: str) -> dict[str, Any]:
        """GET /api/recording: everything the page needs, frame times included."""
        info = self.reader.info
        return {
            "video": self.video.name, "width": info.width, "height": info.height,
            "fps": info.fps, "frame_count": len(self.times),
            "duration_s": self.reader.table.time_s(len(self.times) - 1) + 1 / info.fps,
            "times": self.times, "frame_url": frame_url,
            "stream": self.stream.id, "config": str(self.config_path),
            "lanes": [{"name": lane.name, "line": _points(lane.line),
                       "polygon": _points(lane.polygon), "direction": lane.direction.value,
                       "in_label": lane.in_label, "out_label": lane.out_label,
                       "countable": lane.line is not None} for lane in self.lanes],
            "keys": [{"key": k.key, "lane": k.lane, "direction": k.direction, "side": k.side}
                     for k in self.keys],
            "classes": [{"key": c.key, "name": c.name} for c in self.classes],
            "classes_from": "config" if self.classes_from_config else "default",
            "comments": self.comments(),
            "save_to": None if self.output is None else str(self.output),
            "saved_entries": [{"frame": e.frame, "lane": e.lane, "direction": e.direction,
                               "class": e.class_name} for e in self.saved],
        }

    def entries(self, payload: Any) -> list[ManualEntry]:
        """The page's `{"entries": [{frame, lane, direction, class}, ...]}`, checked against
        the video and the board; EntryError names the first bad entry."""
        if not isinstance(payload, dict) or not isinstance(payload.get("entries"), list):
            raise EntryError('expected {"entries": [{"frame": 41, "lane": "lane3", '
                             '"direction": "towards", "class": "car"}, ...]}')
        raw = payload["entries"]
        if len(raw) > MAX_ENTRIES:
            raise EntryError(f"{len(raw)} entries: at most {MAX_ENTRIES} in one file")
        directions = {(k.lane, k.direction) for k in self.keys}
        classes = {c.name for c in self.classes}
        out = []
        for i, e in enumerate(raw, start=1):
            if not isinstance(e, dict) or set(e) != {"frame", "lane", "direction", "class"}:
                raise EntryError(f"entry {i}: expected frame, lane, direction and class")
            frame, lane, direction, cls = e["frame"], e["lane"], e["direction"], e["class"]
            if (not isinstance(frame, int) or isinstance(frame, bool)
                    or not 0 <= frame < len(self.times)):
                raise EntryError(f"entry {i}: frame {shorten(repr(frame))} is not a frame of "
                                 f"the video (0..{len(self.times) - 1})")
            if (lane, direction) not in directions:
                raise EntryError(f"entry {i}: {shorten(repr(lane))} "
                                 f"{shorten(repr(direction))} is not a counted lane and "
                                 "direction of stream " + repr(self.stream.id))
            if cls not in classes:
                raise EntryError(f"entry {i}: class {shorten(repr(cls))} is not one of "
                                 f"{', '.join(sorted(classes))}")
            out.append(ManualEntry(frame, self.times[frame], lane, direction, cls))
        return out

    def _read_saved(self, path: Path) -> list[ManualEntry]:
        """The counts of an existing --output file, each on its frame (the frame nearest its
        time when the row has none); LanewatchError for rows this board cannot make."""
        from lanewatch.sinks.validation_input import ReviewRun, load_manual_counts

        lanes: dict[str, tuple[str, ...]] = {}
        for k in self.keys:
            lanes[k.lane] = (*lanes.get(k.lane, ()), k.direction)
        classes = tuple(c.name for c in self.classes)
        board = ReviewRun(path.parent, self.stream.id, None, None, None, lanes, None, classes,
                          ())
        manual = load_manual_counts(path, board)  # errors name the line and the fix
        seconds = [self.reader.table.time_s(n) for n in range(len(self.times))]
        entries, problems = [], []
        for e in manual.events:
            if e.class_name not in classes:
                problems.append(f"{path}:{e.line}: class '{e.class_name}' is not one of "
                                f"{', '.join(classes)}")
                continue
            frame = e.frame if e.frame is not None else _nearest(seconds, e.time_s)
            if not 0 <= frame < len(self.times):
                problems.append(f"{path}:{e.line}: frame {frame} is past the video's end "
                                f"(0..{len(self.times) - 1})")
                continue
            entries.append(ManualEntry(frame, self.times[frame], e.lane, e.direction,
                                       e.class_name))
        if problems:
            raise LanewatchError("--output names a CSV whose counts this board cannot go on "
                                 "with (give another --output, or fix the file):\n"
                                 + "\n".join(problems[:20]))
        return entries

    def csv_text(self, entries: list[ManualEntry]) -> str:
        """The manual-count CSV of these entries."""
        return manual_count_csv(entries, self.comments())

    def save(self, entries: list[ManualEntry]) -> Path:
        """Write the CSV to --output (replacing it whole: a crash never leaves half a file)."""
        if self.output is None:
            raise EntryError("this session has no file to save to: start `lanewatch count` "
                             "with --output FILE, or use the page's download")
        temporary = self.output.with_name(f".{self.output.name}.partial")
        temporary.write_text(self.csv_text(entries), encoding="utf-8")
        os.replace(temporary, self.output)
        self.saved = entries  # what a page opened from now on starts from
        return self.output

    def close(self) -> None:
        """Release the video."""
        self.reader.close()


def _nearest(seconds: list[float], t: float) -> int:
    i = bisect.bisect_left(seconds, t)
    if i == len(seconds) or (i > 0 and t - seconds[i - 1] <= seconds[i] - t):
        return max(i - 1, 0)
    return i


def _check_output(output: Path) -> None:
    if output.is_dir():
        raise LanewatchError(f"--output {output} is a folder: give a file name, e.g. "
                             f"{output / 'manual.csv'}")
    if not output.parent.is_dir():
        raise LanewatchError(f"--output {output}: the folder {output.parent} does not exist: "
                             "create it first")
