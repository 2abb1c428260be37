"""exporter/common/jsontext.py against json.dumps(value, indent=2), which it stands in for on the
report's path: the same text, byte for byte, for every kind of plain value and string."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.common import jsontext

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**40), 10**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(),
                    st.text(st.characters(max_codepoint=0x7f)))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5), st.tuples(inner, inner),
                                                       st.dictionaries(st.text(), inner, max_size=5)), max_leaves=30)


@settings(max_examples=2000, deadline=None)
@given(VALUES)
def test_it_writes_what_json_dumps_writes(value):
    assert jsontext.dumps(value) == json.dumps(value, indent=2)


@pytest.mark.parametrize("text", ['"', "\\", "\n\r\t\b\f", "\x00\x1f\x7f", "é", "模型", "\U0001F600", "\ud800",
                                  "a\u2028b", "plain ascii", ""])
def test_each_kind_of_character_is_escaped_as_json_escapes_it(text):
    assert jsontext.dumps({text: [text]}) == json.dumps({text: [text]}, indent=2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 0.1, -0.0, 1e300, 5e-324, 10**30, True])
def test_numbers_are_written_as_json_writes_them(value):
    assert jsontext.dumps([value]) == json.dumps([value], indent=2)


@pytest.mark.parametrize("value", [{1: "a"}, {"a": {1, 2}}, [b"bytes"], object()])
def test_what_it_does_not_take_is_a_type_error_not_a_guess(value):
    with pytest.raises(TypeError):
        jsontext.dumps(value)
