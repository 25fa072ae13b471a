"""Stream management on a running `lanewatch serve`: add, update and remove streams through
the API without a restart and without disturbing the other streams.

    POST   /api/streams          a new stream (JSON: a `streams[]` entry of the config)
    PUT    /api/streams/{id}     replace a stream's settings (lanes, thresholds, source, ...)
    DELETE /api/streams/{id}     stop and remove a stream (its counts stay in the store)
    POST   /api/streams/{id}/lanes/apply   the lane editor's lanes, rolled back on failure
                                 (lane_apply.py)

Bodies are validated exactly like the config file (`${ENV}` references, relative paths against
the config file's folder); a bad body gets 400 with one line per problem. Changes persist
across restarts (`stream_registry.py`). Auth is the API's (bearer token when configured).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from lanewatch.sinks import json_input
from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.environment import interpolate_env
from lanewatch.stream.config.loading import format_validation_error, resolve_path
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve.lane_apply import LaneApply
from lanewatch.stream.serve.stream_registry import keep_source_as_written
from lanewatch.stream.sources.source_url import source_problem

if TYPE_CHECKING:
    from lanewatch.stream.serve.service import Service


def _error(status: int, code: str, message: str, **extra) -> web.HTTPException:
    kinds = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict,
             503: web.HTTPServiceUnavailable}
    return kinds[status](text=json.dumps({"error": code, "message": message, **extra}),
                         content_type="application/json")


class StreamAdmin:
    """The route handlers (see the module docstring)."""

    def __init__(self, service: Service):
        self.service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/streams", self.add),
                web.put("/api/streams/{id}", self.update),
                web.delete("/api/streams/{id}", self.remove),
                *LaneApply(self.service).routes()]  # the lane editor's "Apply to stream"

    async def _stream(self, request: web.Request, stream_id: str | None = None) -> StreamConfig:
        """The request body as a validated stream config."""
        try:  # bounded: 100,000 `[` must be a 400, not a RecursionError
            body = json_input.parse(await request.read())
        except json_input.JSONInputError as err:
            raise _error(400, "bad_json", f"the body must be a JSON object: one `streams[]` "
                         f"entry of the config ({err})") from None
        if not isinstance(body, dict):
            raise _error(400, "bad_json", "the body must be a JSON object")
        if stream_id is not None:
            body.setdefault("id", stream_id)
            if body["id"] != stream_id:
                raise _error(400, "id_mismatch", f"the body's id '{body['id']}' differs from "
                             f"the URL's '{stream_id}'; a stream cannot be renamed (remove it "
                             "and add it under the new id)")
        written = body.get("source")  # before ${ENV} substitution: what the registry stores
        try:
            body = interpolate_env(body, "stream")
            stream = StreamConfig.model_validate(body)
            stream = keep_source_as_written(stream, written)  # refuses a literal password
        except ConfigError as err:
            raise _error(400, "invalid_stream", str(err)) from None
        except ValidationError as err:
            lines = format_validation_error(err, body, "stream").splitlines()
            raise _error(400, "invalid_stream", lines[0], problems=lines[1:]) from None
        # Checked before anything is added: a URL that cannot be parsed breaks every later
        # use of it (its redaction for the API and the log, the reader's retries).
        problem = source_problem(stream.source)
        if problem is not None:
            raise _error(400, "invalid_source", f"stream '{stream.id}': {problem}")
        config_path = self.service.config_path
        base = Path(config_path).resolve().parent if config_path else Path.cwd()
        return stream.model_copy(update={"source": resolve_path(stream.source, base)})

    # Each mutation holds `service.mutations` from its existence check to its end: requests
    # that race (three PUTs at once, a PUT and a DELETE) run one after the other.
    async def add(self, request: web.Request) -> web.Response:
        stream = await self._stream(request)
        async with self.service.mutations:
            if stream.id in self.service.runners:
                raise _error(409, "stream_exists", f"stream '{stream.id}' already exists; "
                             f"PUT /api/streams/{stream.id} updates it")
            try:
                self.service.add_stream(stream)
            except RuntimeError as err:  # shutting down
                raise _error(503, "shutting_down", str(err)) from None
            return web.json_response(self.service.stats(stream.id), status=201)

    async def update(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        self._known(sid)
        stream = await self._stream(request, sid)
        async with self.service.mutations:
            self._known(sid)  # removed while this request waited
            try:
                await self.service.update_stream(stream)
            except RuntimeError as err:  # the old runner would not stop in time, or shutdown
                raise _error(503, "stream_busy", str(err)) from None
            return web.json_response(self.service.stats(sid))

    async def remove(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        async with self.service.mutations:
            self._known(sid)
            await self.service.remove_stream(sid)
        counts = self.service.store.cumulative(sid)
        return web.json_response({
            "removed": sid, "counts": [
                {"lane": k.lane, "class": k.class_name, "direction": k.direction, "count": n}
                for k, n in sorted(counts.items())]})

    def _known(self, sid: str) -> None:
        if sid not in self.service.runners:
            raise _error(404, "unknown stream", f"no stream '{sid}'",
                         streams=list(self.service.runners))
