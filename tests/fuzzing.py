"""Hypothesis strategies and settings shared by the fuzz suites (tests/test_fuzz_*.py): the
hostile values the issue 19 campaign used (deep nesting, huge numbers, wrong types), mixed with
well-formed input so that the examples also reach the code behind the validation."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# A few hundred examples per surface, the three surfaces well within 3 minutes on 2 cores.
# No example database: the working tree stays clean, and a failure prints its shrunk example
# (and a @reproduce_failure blob) anyway.
FUZZ = settings(max_examples=300, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# Numbers as JSON text that Python parses into trouble: inf, NaN, ints too large for a float.
HUGE_NUMBERS = ["1e400", "-1e400", "1e308", "9" * 400, "-" + "9" * 400, "NaN", "Infinity",
                "-Infinity", "0", "-0", "1e-400", "0.5", "-1", "4096", "60", "64"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["*", "cam", "", "${HOME}", "${NOPE}", "x" * 5000]))

# Any JSON value, a few levels deep.
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=12)


def deep_nesting(max_chars: int = 100_000) -> st.SearchStrategy[str]:
    """Arrays or objects nested far beyond any sane document (up to 100,000 `[`), closed or
    not, in at most `max_chars` characters."""
    def nested(opener: str) -> st.SearchStrategy[str]:
        most = max_chars // (len(opener) + 1)
        return st.builds(
            lambda n, closed: opener * n + ("null" + _closer(opener) * n if closed else ""),
            st.integers(min_value=1, max_value=most), st.booleans())
    return st.sampled_from(["[", '{"a":', '{"type":']).flatmap(nested)


def _closer(opener: str) -> str:
    return "]" if opener == "[" else "}"


def with_raw_number(template: dict) -> st.SearchStrategy[str]:
    """`template` as JSON text with one field's value replaced by a huge number's text."""
    def build(key: str, number: str) -> str:
        return json.dumps({**template, key: "@@"}).replace('"@@"', number)
    keys = [k for k in template if k != "type"] or ["value"]
    return st.builds(build, st.sampled_from(keys), st.sampled_from(HUGE_NUMBERS))


def text_bodies(shaped: st.SearchStrategy[str]) -> st.SearchStrategy[str | bytes]:
    """Message or body text: well-shaped (`shaped`), any JSON, deep nesting, not JSON at all."""
    return st.one_of(
        shaped, shaped,  # twice as likely: they get past the parsing
        json_values.map(json.dumps),  # json.dumps writes NaN and Infinity for those floats
        deep_nesting(),
        st.text(max_size=200),
        st.binary(max_size=200))
