"""Lanes from the dashboard's editor: validated like a config file, exported as YAML in the
stream's coordinate mode, and spliced into the config file without resolving its ${ENV}."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve.lane_export import config_yaml, lanes_from_editor, lanes_yaml

PIXELS = StreamConfig(id="cam", source="cam.mp4")
NORMALIZED = StreamConfig(id="cam", source="cam.mp4", coordinates="normalized")
LANE = {"name": "a", "polygon": [[100, 100], [300, 100], [300, 400]],
        "line": [[100, 200], [300, 200.4]], "direction": "in"}


@pytest.mark.parametrize("stream, expected_line", [
    (PIXELS, [[100, 200], [300, 200]]),  # whole pixels
    (NORMALIZED, [[0.1, 0.4], [0.3, 0.4008]]),  # fractions of the 1000x500 frame
])
def test_lanes_are_exported_in_the_streams_coordinates(stream, expected_line):
    specs = lanes_from_editor({"lanes": [LANE]}, stream, (1000, 500))
    exported = yaml.safe_load(lanes_yaml(specs))["lanes"]
    assert exported[0]["line"] == expected_line
    assert exported[0]["direction"] == "in" and exported[0]["name"] == "a"
    assert "in_label" not in exported[0]  # defaults are left out


@pytest.mark.parametrize("payload, message", [
    ([LANE], 'expected {"lanes": [...]}'),
    ({"lanes": ["a"]}, "each lane must be an object"),
    ({"lanes": [{**LANE, "line": [[1, 2, 3]]}]}, "line must be a list of [x, y] points"),
    ({"lanes": [LANE, LANE]}, "lane names must be unique; repeated: a"),
    ({"lanes": [{**LANE, "line": [[5, 5], [5, 5]]}]}, "line needs two distinct points"),
    ({"lanes": [{**LANE, "polygon": [[1, 1], [2, 2]]}]}, "at least 3 points"),
    ({"lanes": [{**LANE, "line": [[100, 200], [1200, 200]]}]}, "outside the 1000x500 frame"),
    ({"lanes": [{**LANE, "colour": "red"}]}, "colour"),
    ({"lanes": [{"name": "b"}]}, "a lane needs a polygon, a counting line, or both"),
])
def test_bad_lanes_get_clear_errors(payload, message):
    with pytest.raises(ConfigError) as info:
        lanes_from_editor(payload, PIXELS, (1000, 500))
    assert message in str(info.value)


def test_whole_config_keeps_env_references_and_passes_check_config(tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "hunter22")
    (tmp_path / "model").mkdir()
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent("""
        model: {path: model}
        streams:
          - id: gate
            source: rtsp://viewer:${CAM_PASSWORD}@10.0.0.7/stream1
            lanes:
              - {name: old, line: [[0, 10], [50, 10]]}
          - id: other
            source: other.mp4
    """))
    specs = lanes_from_editor({"lanes": [LANE]}, load_config(path).streams[0], (1000, 500))
    text = config_yaml(path, "gate", specs)
    assert "${CAM_PASSWORD}" in text and "hunter22" not in text
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    config = load_config(exported)
    assert [lane.name for lane in config.streams[0].lanes] == ["a"]
    assert config.streams[0].source.endswith("viewer:hunter22@10.0.0.7/stream1")
    assert config.streams[1].id == "other"
    with pytest.raises(ConfigError, match="has no stream 'gone'"):
        config_yaml(path, "gone", specs)
