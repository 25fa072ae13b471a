"""Property-based fuzzing of the config loader (issue 19): random YAML trees grown from a valid
config (values replaced by hostile ones, keys dropped or added), random YAML text, and deep
nesting. The property: `load_config` returns a Config or raises ConfigError (the one-line error
`lanewatch` prints, exit code 2), never any other exception."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import Config

from fuzzing import FUZZ, deep_nesting, json_values

pytestmark = pytest.mark.timeout(180)

VALID = {
    "model": {"path": "m.pt", "classes": ["car", "truck"], "imgsz": 640},
    "server": {"port": 8080, "auth_token": "${LANEWATCH_FUZZ_TOKEN:-a-long-token}",
               "allowed_origins": ["https://dash.example.org"]},
    "store": {"path": "counts.db"},
    "counting": {"interval_s": 60},
    "streams": [{
        "id": "cam-1", "source": "rtsp://user:${CAM_PASSWORD:-pw}@10.0.0.7/s",
        "coordinates": "normalized",
        "source_options": {"loop": False},
        "detection": {"every_nth_frame": 2, "region": [0, 0, 1, 1]},
        "lanes": [{"name": "l1", "line": [[0, 0.5], [1, 0.5]], "direction": "in"},
                  {"name": "l2", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "turning": {"zones": [{"name": "a", "polygon": [[0, 0], [0.5, 0], [0.5, 0.5]]},
                              {"name": "b", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1]]}],
                    "movements": [{"name": "ab", "from": "a", "to": "b"}]},
    }],
}

# YAML's own hostile values on top of JSON's: .nan, .inf, dates, binary, ${...} references.
yaml_scalars = st.one_of(
    json_values, st.dates(), st.binary(max_size=8),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 10 ** 400, -(10 ** 400),
                     "${", "${NOPE}", "${A:-${B}}", "$${X}", "x" * 5000, "", "0x10"]))


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of a tree of dicts and lists."""
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += paths(value, (*prefix, i))
    return found


@st.composite
def mutated_configs(draw) -> Any:
    """The valid config with a few nodes replaced, dropped or given unknown keys."""
    tree = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(tree)))
        if not path:
            return draw(yaml_scalars)  # the whole document replaced
        parent = tree
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "drop", "add_key"]))
        if action == "replace":
            parent[path[-1]] = draw(yaml_scalars)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "add_key" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(max_size=10))] = draw(yaml_scalars)
    return tree


def as_yaml(tree: Any) -> str:
    return yaml.safe_dump(tree, allow_unicode=True)


documents = st.one_of(
    mutated_configs().map(as_yaml), mutated_configs().map(as_yaml),
    st.text(max_size=300),
    deep_nesting(20_000),
    st.sampled_from(["a: &x [*x]", "model: !!python/object:os.system {}", "- - - -", "\t",
                     "{" * 5000, "a: " + "[" * 300 + "]" * 300]))


def test_valid_base_config_loads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(as_yaml(VALID))
    assert isinstance(load_config(path), Config)


def test_config_loader_raises_only_config_errors(tmp_path):
    path = tmp_path / "fuzz.yaml"

    @FUZZ
    @given(documents)
    def check(text):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as err:
            message = str(err)
            assert message and "Traceback" not in message

    check()
