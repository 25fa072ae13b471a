"""Stream management on a running `lanewatch serve`: add, update and remove streams through
the API without a restart and without disturbing the other streams.

    POST   /api/streams          a new stream (JSON: a `streams[]` entry of the config)
    PUT    /api/streams/{id}     replace a stream's settings (lanes, thresholds, source, ...)
    DELETE /api/streams/{id}     stop and remove a stream (its counts stay in the store)

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

from lanewatch.stream.config import (
    StreamConfig,
    format_validation_error,
    interpolate_env,
    resolve_path,
)
from lanewatch.stream.errors import ConfigError

if TYPE_CHECKING:
    from lanewatch.stream.service import Service


def _error(status: int, code: str, message: str, **extra) -> web.HTTPException:
    kinds = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict}
    return kinds[status](text=json.dumps({"error": code, "message": message, **extra}),
                         content_type="application/json")


class StreamAdmin:
    """The route handlers (see the module docstring)."""

    def __init__(self, service: Service):
        self.service = service

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/streams", self.add),
                web.put("/api/streams/{id}", self.update),
                web.delete("/api/streams/{id}", self.remove)]

    async def _stream(self, request: web.Request, stream_id: str | None = None) -> StreamConfig:
        """The request body as a validated stream config."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _error(400, "bad_json", "the body must be a JSON object: one `streams[]` "
                         "entry of the config") from None
        if not isinstance(body, dict):
            raise _error(400, "bad_json", "the body must be a JSON object")
        if stream_id is not None:
            body.setdefault("id", stream_id)
            if body["id"] != stream_id:
                raise _error(400, "id_mismatch", f"the body's id '{body['id']}' differs from "
                             f"the URL's '{stream_id}'; a stream cannot be renamed (remove it "
                             "and add it under the new id)")
        try:
            body = interpolate_env(body, "stream")
            stream = StreamConfig.model_validate(body)
        except ConfigError as err:
            raise _error(400, "invalid_stream", str(err)) from None
        except ValidationError as err:
            lines = format_validation_error(err, body, "stream").splitlines()
            raise _error(400, "invalid_stream", lines[0], problems=lines[1:]) from None
        config_path = self.service.config_path
        base = Path(config_path).resolve().parent if config_path else Path.cwd()
        return stream.model_copy(update={"source": resolve_path(stream.source, base)})

    async def add(self, request: web.Request) -> web.Response:
        stream = await self._stream(request)
        if stream.id in self.service.runners:
            raise _error(409, "stream_exists", f"stream '{stream.id}' already exists; PUT "
                         f"/api/streams/{stream.id} updates it")
        runner = self.service.add_stream(stream)
        return web.json_response(runner.status(), status=201)

    async def update(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        self._known(sid)
        stream = await self._stream(request, sid)
        runner = await self.service.update_stream(stream)
        return web.json_response(runner.status())

    async def remove(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
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
