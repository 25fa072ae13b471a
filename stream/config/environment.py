"""Environment references in configuration strings: `${NAME}`, `${NAME:-default}`, and `$${`
for a literal `${`. They keep secrets such as camera passwords out of the config file, and out
of the stream registry (stream/serve/stream_registry.py stores a posted source as it was written).
"""

from __future__ import annotations

import os
import re
from typing import Any

from lanewatch.sinks.errors import ConfigError

# `$${` (a literal `${`), a reference, or any other `${`: a malformed reference
_ENV = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


def interpolate_env(value: Any, where: str = "") -> Any:
    """Replace ${NAME} / ${NAME:-default} in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate_env(v, f"{where}.{k}" if where else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match) -> str:
        if m.group(0) == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name is None:  # used literally it would fail later, far from here
            raise ConfigError(
                f"{where}: malformed environment reference '{_reference_at(value, m.start())}' "
                "(write ${NAME} or ${NAME:-default}, NAME of letters, digits and _ not starting "
                "with a digit; write $${ for a literal ${)")
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set "
            f"(export it, or write ${{{name}:-default}} to give a default)"
        )

    return _ENV.sub(substitute, value)


def _reference_at(text: str, start: int) -> str:
    """The malformed reference at `start`, to its `}` (or 40 characters), any text after a
    `:` hidden: it may be a default password."""
    end = text.find("}", start)
    snippet = text[start:end + 1] if 0 <= end < start + 40 else text[start:start + 40]
    return re.sub(r":[^}]*", ":...", snippet, count=1)


def has_reference(text: str) -> bool:
    """Whether a string holds a `${...}` reference (a `$${` escape is none)."""
    return "${" in text.replace("$${", "")


def escape(text: str) -> str:
    """The string written so that interpolation gives it back unchanged."""
    return text.replace("${", "$${")
