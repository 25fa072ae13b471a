"""The lane editor's "Apply to stream": drawn lanes replace a running stream's lanes, after
the operator has seen what changes, and are rolled back if the stream does not come back.

    POST /api/streams/{id}/lanes/apply   {"lanes": [...], "dry_run": true|false}

The lanes arrive as the editor draws them (pixels of the frame) and are validated exactly like
the export (`lane_export.lanes_from_editor`) and then as a whole stream, like `PUT
/api/streams/{id}`. A dry run answers the diff only (lanes added, removed, changed: which
fields, old -> new, in the stream's coordinates). Otherwise the stream restarts with the new
lanes (`Service.update_stream`: the change persists across restarts like any PUT), and the
reply waits until it has processed a frame; if it fails, or no frame comes within
FIRST_FRAME_TIMEOUT_S, the previous stream config is restored and the reply (409) says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web
from pydantic import ValidationError

from lanewatch.sinks import json_input
from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.loading import format_validation_error
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve.lane_export import lane_records, lanes_from_editor
from lanewatch.stream.serve.stream_registry import keep_source_as_written
from lanewatch.stream.sources.live import StreamState
from lanewatch.trackers.analytics.lanes import LaneSpec

if TYPE_CHECKING:
    from lanewatch.stream.serve.service import Service

log = logging.getLogger(__name__)

FIRST_FRAME_TIMEOUT_S = 20.0  # a camera reconnecting within this is up; the rest rolls back
_POLL_S = 0.1


@dataclass(frozen=True)
class FieldChange:
    """One setting of a lane that differs: its values in the stream's coordinates."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class LaneChange:
    """A lane present before and after, with the settings that differ."""

    name: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True)
class LaneDiff:
    """What applying new lanes changes, lane by lane (matched by name)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[LaneChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        """One line for the log: `+lane5; -lane3; lane2 line moved, direction in -> both`."""
        if self.empty:
            return "no change"
        parts = [f"+{n}" for n in self.added] + [f"-{n}" for n in self.removed]
        for lane in self.changed:
            parts.append(f"{lane.name} " + ", ".join(_describe(f) for f in lane.fields))
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {"added": list(self.added), "removed": list(self.removed),
                "changed": [{"name": c.name, "fields": [
                    {"field": f.field, "old": f.old, "new": f.new} for f in c.fields]}
                    for c in self.changed],
                "summary": self.summary()}


def _describe(change: FieldChange) -> str:
    if change.field in ("line", "polygon"):  # points are long: say what happened to them
        if change.old is None:
            return f"{change.field} added"
        return f"{change.field} removed" if change.new is None else f"{change.field} moved"
    return f"{change.field} {change.old} -> {change.new}"


def lane_diff(old: list[LaneSpec], new: list[LaneSpec]) -> LaneDiff:
    """The changes from `old` to `new` lanes, in the stream's own coordinates."""
    before = {r["name"]: r for r in lane_records(old)}
    after = {r["name"]: r for r in lane_records(new)}
    changed = []
    for name, record in after.items():
        if name not in before:
            continue
        keys = [k for k in [*before[name], *record] if k != "name"]
        fields = tuple(FieldChange(k, before[name].get(k), record.get(k))
                       for k in dict.fromkeys(keys) if before[name].get(k) != record.get(k))
        if fields:
            changed.append(LaneChange(name, fields))
    return LaneDiff(added=tuple(n for n in after if n not in before),
                    removed=tuple(n for n in before if n not in after),
                    changed=tuple(changed))


def stream_with_lanes(stream: StreamConfig, specs: list[LaneSpec]) -> StreamConfig:
    """`stream` with `specs` as its lanes, validated as a whole stream (turning zones,
    calibration and the rest checked against the new lanes, as in a config file)."""
    data = stream.model_dump(mode="json", by_alias=True, exclude_unset=True)
    data["lanes"] = lane_records(specs)
    try:
        return StreamConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, data, f"streams({stream.id})")) from None


class ApplyFailed(Exception):
    """The new lanes did not start; the previous config runs again (the message says how)."""


async def wait_for_first_frame(service: Service, stream_id: str, timeout_s: float) -> str | None:
    """None once the stream's (new) runner has processed a frame; else why it has not."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = service.stats(stream_id)
        failed = status["state"] == StreamState.FAILED.value
        if status.get("frames_processed", 0) > 0 and not failed:
            return None
        if failed:
            return f"it failed: {status.get('error') or 'no reason given'}"
        if time.monotonic() >= deadline:
            reason = f" (last error: {status['error']})" if status.get("error") else ""
            return (f"no frame within {timeout_s:.0f} s, state {status['state']}"
                    f"{reason}")
        await asyncio.sleep(_POLL_S)


async def apply_stream(service: Service, new: StreamConfig, old: StreamConfig,
                       timeout_s: float) -> None:
    """Restart the stream with `new`; back to `old` if it has no frame within `timeout_s`.
    Call with `service.mutations` held. ApplyFailed after a rollback; RuntimeError (from
    `update_stream`) when a runner would not stop."""
    await service.update_stream(new)
    problem = await wait_for_first_frame(service, new.id, timeout_s)
    if problem is None:
        return
    log.warning("stream %s: the new lanes did not start (%s); restoring the previous ones",
                new.id, problem)
    await service.update_stream(old)
    raise ApplyFailed(f"stream '{new.id}' did not start with the new lanes: {problem}. The "
                      "previous lanes are back (the stream restarted with them); check the "
                      "camera (the stream's state and last error) and apply again")


def _written_source(service: Service, stream: StreamConfig) -> str:
    """The stream's source before `${ENV}` substitution: kept as written by the registry."""
    if stream._source_as_written is not None:
        return stream._source_as_written
    path = service.config_path
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, yaml.YAMLError):
        data = None
    streams = data.get("streams") if isinstance(data, dict) else None
    for entry in streams if isinstance(streams, list) else []:
        if isinstance(entry, dict) and entry.get("id") == stream.id and isinstance(
                entry.get("source"), str):
            return entry["source"]
    return stream.source


def _reply(status: int, code: str, message: str, **extra) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


class LaneApply:
    """The route handler (see the module docstring)."""

    def __init__(self, service: Service):
        self.service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/streams/{id}/lanes/apply", self.apply)]

    async def apply(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        try:
            payload = json_input.parse(await request.read())
        except json_input.JSONInputError as err:
            return _reply(400, "bad_json", f"the body: {err}")
        dry_run = isinstance(payload, dict) and payload.get("dry_run") is True
        async with self.service.mutations:  # the diff is against what runs when it applies
            runner = self.service.runners.get(sid)
            if runner is None:
                return _reply(404, "unknown stream", f"no stream '{sid}'",
                              streams=list(self.service.runners))
            frame_size = runner.frame_size
            if frame_size is None:
                return _reply(503, "no_frame_yet", f"stream {sid} has not delivered a frame "
                              "yet: the editor's lanes cannot be placed; retry shortly")
            old = runner.stream
            try:
                specs = lanes_from_editor(payload, old, frame_size)
                written = _written_source(self.service, old)
                new = keep_source_as_written(stream_with_lanes(old, specs), written)
                old = keep_source_as_written(old, written)
            except ConfigError as err:
                return _reply(400, "invalid_lanes", str(err))
            diff = lane_diff(list(old.lanes), specs)
            if dry_run or diff.empty:
                return web.json_response({"stream": sid, "applied": False, "dry_run": dry_run,
                                          "diff": diff.as_json()})
            log.info("stream %s: lanes changed: %s", sid, diff.summary())
            try:
                await apply_stream(self.service, new, old, FIRST_FRAME_TIMEOUT_S)
            except ApplyFailed as err:
                return _reply(409, "apply_failed", str(err), rolled_back=True,
                              diff=diff.as_json())
            except RuntimeError as err:  # a runner would not stop, or the service stops
                return _reply(503, "stream_busy", str(err))
            return web.json_response({"stream": sid, "applied": True, "dry_run": False,
                                      "diff": diff.as_json(), "status": self.service.stats(sid)})

