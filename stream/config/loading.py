"""Loading a configuration: YAML text -> `${ENV}` substitution -> validation -> paths.

Strings may reference environment variables as `${NAME}` or `${NAME:-default}` (write `$${`
for a literal `${`), so secrets such as camera passwords stay out of the file. Relative paths
(model, file sources, the SQLite store) are resolved against the config file's directory.
Every problem becomes a `ConfigError` naming the key path and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.checks import MAX_DEPTH, non_finite, too_deep
from lanewatch.stream.config.environment import interpolate_env
from lanewatch.stream.config.schema import Config
from lanewatch.stream.sources.source_url import source_problem


def _format_location(loc: tuple, data: Any) -> str:
    """Dotted field path, e.g. streams[0].lanes[1].line, with ids where they help."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict):
                label = node.get("id") or node.get("name")
                if isinstance(label, str):
                    out += f"({label})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def format_validation_error(err: ValidationError, data: Any, source: str) -> str:
    """One line per problem: where it is and what is wrong."""
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the configuration reference in README)"
        elif e["type"] == "missing":
            msg = "required but missing"
        lines.append(f"  - {_format_location(loc, data)}: {msg}")
    return "\n".join(lines)


def resolve_path(value: str, base: Path) -> str:
    """Config-relative path if that exists; otherwise the value as given (URL, hub name)."""
    if "://" in value or Path(value).is_absolute():
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate an already-parsed YAML tree."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with model: and streams:, "
                          f"got {type(data).__name__}")
    if too_deep(data):
        raise ConfigError(f"{source}: lists and mappings nested more than {MAX_DEPTH} levels "
                          "deep: not a lanewatch config (see the configuration reference in "
                          "README)")
    try:
        data = interpolate_env(data)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    problem = non_finite(data)  # every section, not only streams (an infinite port, time-out)
    if problem is not None:
        raise ConfigError(f"{source}: {problem}")
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, data, source)) from None
    # A URL that cannot be parsed breaks its redaction and the reader's retries later on.
    bad_sources = [f"streams[{i}]({s.id}).source: {problem}" for i, s in enumerate(config.streams)
                   if (problem := source_problem(s.source)) is not None]
    if bad_sources:
        raise ConfigError(f"{source}: " + "; ".join(bad_sources))
    if base_dir is None:
        return config
    model = config.model.model_copy(update={"path": resolve_path(config.model.path, base_dir)})
    streams = [s.model_copy(update={"source": resolve_path(s.source, base_dir)})
               for s in config.streams]
    store_path = Path(config.store.path)
    store = config.store.model_copy(update={
        "path": str(store_path if store_path.is_absolute() else base_dir / store_path)})
    return config.model_copy(update={"model": model, "streams": streams, "store": store})


MAX_FLOW_DEPTH = 64  # a config nests 6 levels at most


def _flow_depth(text: str) -> int:
    """How deep `[` and `{` nest in YAML text (brackets in quoted strings count too: an
    over-estimate that only matters for absurd files)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def load_config(path: str | Path) -> Config:
    """Read, interpolate and validate a YAML config file; raises ConfigError with field paths."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        # PyYAML recurses once per level: `[[[[...` would end in a RecursionError (slowly).
        if _flow_depth(text) > MAX_FLOW_DEPTH:
            raise ConfigError(f"{path}: not valid YAML: [ and {{ nested more than "
                              f"{MAX_FLOW_DEPTH} levels deep")
        data = yaml.safe_load(text)
    except RecursionError:  # deep block nesting: much larger files, same answer
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from None
    return parse_config(data, str(path), path.parent.resolve())
