"""`RunningStream`, the one surface of a stream the service, the API and the stream admin use:
the local `StreamRunner` and the cluster's `RemoteStream` both have every member, with the
protocol's signature and types; and the serving code reads them through nothing else."""

from __future__ import annotations

import ast
import inspect
import typing

import pytest

from lanewatch.stream.cluster.remote import RemoteStream
from lanewatch.stream.pipeline.runner import StreamRunner
from lanewatch.stream.pipeline.running_stream import RunningStream

from conftest import REPO

IMPLEMENTATIONS = (StreamRunner, RemoteStream)
MEMBERS = sorted(name for name in vars(RunningStream)
                 if not name.startswith("_") and name not in vars(typing.Protocol))


def _hints(function) -> dict[str, typing.Any]:
    """The function's annotations resolved; `Self` (start) stands for the class itself."""
    hints = typing.get_type_hints(function)
    return {k: "Self" if v is typing.Self else v for k, v in hints.items()}


def _shape(owner: type, name: str) -> tuple:
    """What a caller relies on in a member: a method's parameters (name, kind, default) and
    resolved types; a property's or an annotated attribute's type."""
    member = inspect.getattr_static(owner, name, None)
    if isinstance(member, property):
        return ("value", _hints(member.fget)["return"])
    if callable(member):
        params = [(p.name, p.kind, p.default)
                  for p in inspect.signature(member).parameters.values()]
        return ("method", params, _hints(member))
    annotations = typing.get_type_hints(owner)
    assert name in annotations, f"{owner.__name__}.{name} is missing"
    return ("value", annotations[name])


def test_the_protocol_declares_the_whole_surface_with_documented_members():
    assert MEMBERS == ["frame_size", "lane_snapshot", "lanes", "latest_image",
                       "movement_snapshot", "start", "state", "status", "stop", "stream"]
    for name in MEMBERS:
        member = inspect.getattr_static(RunningStream, name)
        doc = (member.fget if isinstance(member, property) else member).__doc__
        assert doc and doc.strip(), f"RunningStream.{name} has no docstring"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", MEMBERS)
def test_both_streams_have_each_member_with_the_protocols_signature(implementation, name):
    assert _shape(implementation, name) == _shape(RunningStream, name)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_both_streams_say_they_are_running_streams(implementation):
    assert "RunningStream" in implementation.__doc__


def test_the_serving_code_reads_streams_through_the_protocol_only():
    """No getattr or hasattr in stream/serve (a probe hides a missing member until the day it
    is called); StreamRunner and RemoteStream are named only in service.py, where
    `Service._runner` chooses."""
    for path in sorted((REPO / "stream" / "serve").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not names & {"getattr", "hasattr"}, path.name
        if path.name != "service.py":
            names |= {n.name.rsplit(".")[-1] for n in ast.walk(tree) if isinstance(n, ast.alias)}
            assert not names & {"StreamRunner", "RemoteStream"}, path.name
