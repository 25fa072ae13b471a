"""The command line's shape: -v anywhere, a description for every sub-command."""

from __future__ import annotations

import pytest

from lanewatch.stream.cli import build_parser

COMMANDS = {  # a valid argument list for each sub-command
    "process": ["process", "v.mp4", "-c", "c.yaml", "-o", "out"],
    "serve": ["serve", "-c", "c.yaml"],
    "bench": ["bench", "-c", "c.yaml"],
    "bench-tracker": ["bench-tracker"],
    "check-config": ["check-config", "c.yaml"],
    "validate": ["validate", "run", "m.csv"],
    "count": ["count", "v.mp4", "-c", "c.yaml"],
    "tune": ["tune", "v.mp4", "m.csv", "-c", "c.yaml", "-o", "out"],
}


def sub_commands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_the_table_lists_every_sub_command():
    assert set(sub_commands()) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_verbose_before_or_after_the_sub_command(name):
    parser = build_parser()
    assert parser.parse_args(COMMANDS[name]).verbose is False
    assert parser.parse_args(["-v", *COMMANDS[name]]).verbose is True
    assert parser.parse_args([*COMMANDS[name], "-v"]).verbose is True  # as errors suggest


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_sub_command_describes_itself(name):
    help_text = sub_commands()[name].format_help()
    description = help_text.split("\n\n")[1]
    assert len(description) > 30 and not description.startswith(("usage", "positional")), \
        help_text
