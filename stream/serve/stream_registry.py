"""Streams added, changed or removed at run time, kept across restarts.

The config file is what an operator wrote; the registry records what was changed since through
the API (`POST/PUT/DELETE /api/streams`). At start-up the service runs the file's streams with
the registry's changes applied: a stream added at run time comes back, an updated one comes
back updated, a removed one stays removed. It lives in the count store's database (its own
table and connection): the SQLite file, or in cluster mode the shared PostgreSQL database.

No password is ever stored in clear. A source posted with `${ENV}` references is stored as it
was written and substituted again at start-up (a rotated password is picked up by a restart);
a password written literally is refused by the API (`keep_source_as_written`), telling the
user to reference an environment variable of the service instead.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pydantic import ValidationError

from lanewatch.sinks.database import Database, DatabaseError
from lanewatch.sinks.errors import ConfigError
from lanewatch.sinks.redaction import password_of, split_credentials
from lanewatch.stream.config.environment import escape, has_reference, interpolate_env
from lanewatch.stream.config.loading import format_validation_error
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.sources.source_url import source_problem

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runtime_streams (
    id TEXT PRIMARY KEY, config TEXT, removed INTEGER NOT NULL, updated_s {double} NOT NULL
)
"""


class StreamRegistry:
    """Runtime changes to the configured streams (thread-safe)."""

    def __init__(self, target: str | Path):
        try:
            self._db = Database(target)
            self._db.create(_SCHEMA)
        except DatabaseError as err:
            raise ConfigError(f"cannot open the stream registry: {err}") from None

    def save(self, stream: StreamConfig) -> None:
        """Record a stream added or updated at run time: its source as written when it holds
        `${ENV}` references (see `keep_source_as_written`). ConfigError, and nothing stored,
        for a source whose password would be stored in clear."""
        written = stream._source_as_written
        if written is not None and has_reference(written):
            source = written
        elif password_of(stream.source):
            raise ConfigError(f"stream '{stream.id}': refusing to store its source's password "
                              "in clear; post the source with a ${VAR} reference")
        else:  # stored as a template too: a literal `${` is escaped
            source = escape(stream.source)
        data = stream.model_dump(mode="json", by_alias=True)
        data["source"] = source
        self._write(stream.id, json.dumps(data), removed=False)

    def remove(self, stream_id: str) -> None:
        """Record that a stream was removed at run time."""
        self._write(stream_id, None, removed=True)

    def _write(self, stream_id: str, config: str | None, removed: bool) -> None:
        self._db.execute(
            "INSERT INTO runtime_streams VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " config = excluded.config, removed = excluded.removed,"
            " updated_s = excluded.updated_s", (stream_id, config, int(removed), time.time()))

    def apply(self, streams: list[StreamConfig]) -> list[StreamConfig]:
        """The file's streams with the runtime changes applied, in the file's order, then the
        streams added at run time in the order they were added."""
        rows = self._db.query("SELECT id, config, removed FROM runtime_streams"
                              " ORDER BY updated_s")
        changed: dict[str, StreamConfig | None] = {}
        for sid, config, removed in rows:
            if removed:
                changed[sid] = None
                continue
            # One stream's problem (a variable no longer set) must not stop the service.
            try:
                changed[sid] = _restore(sid, config)
            except ConfigError as err:
                _not_restored(sid, str(err))
            except ValidationError as err:
                _not_restored(sid, " ".join(format_validation_error(err, {}, sid).split()))
            except ValueError as err:  # not JSON
                _not_restored(sid, f"unreadable record ({err})")
        out = [changed.get(s.id, s) for s in streams]
        known = {s.id for s in streams}
        out += [c for sid, c in changed.items() if sid not in known]
        return [s for s in out if s is not None]

    def close(self) -> None:
        self._db.close()


def _not_restored(stream_id: str, reason: str) -> None:
    log.error("stream '%s' (changed through the API) is not started: %s; set what is missing "
              "and restart, or post the stream again", stream_id, reason)


def _restore(stream_id: str, config: str) -> StreamConfig:
    """A stored stream, its source's `${ENV}` references substituted from today's environment."""
    data = json.loads(config)
    written = data.get("source")
    if isinstance(written, str):
        if password_of(written) and not has_reference(written):  # stored by an older version
            log.warning("stream '%s' was stored with its password in clear by an older version "
                        "of lanewatch; PUT it again with a ${VAR} reference", stream_id)
        else:
            data["source"] = interpolate_env(written, f"{stream_id}.source")
    stream = StreamConfig.model_validate(data)
    problem = source_problem(stream.source)  # e.g. a ${VAR} that now holds a broken URL
    if problem is not None:
        raise ConfigError(problem)
    return stream


def keep_source_as_written(stream: StreamConfig, written: str) -> StreamConfig:
    """The stream of an API request, carrying its source as the user wrote it (before `${ENV}`
    substitution) for the registry. ConfigError when the source has a password written
    literally: the registry would have to store it in clear."""
    if password_of(stream.source) and not _password_from_environment(written):
        parts = split_credentials(stream.source)
        example = f"{parts.scheme}{parts.user}:${{CAM_PASSWORD}}@{parts.rest}" if parts else ""
        raise ConfigError(
            f"stream '{stream.id}': source has a password written literally, and streams "
            "added through the API are stored in the service's database; reference an "
            f"environment variable of the service instead, e.g. {example} (or put the stream "
            "in the config file)")
    copy = stream.model_copy()
    copy._source_as_written = written
    return copy


def _password_from_environment(written: str) -> bool:
    """Whether the password of a source, as written, comes from a `${...}` reference: in the
    password itself, or in a reference holding the whole userinfo or URL."""
    password = password_of(written)
    return has_reference(password) if password is not None else has_reference(written)
