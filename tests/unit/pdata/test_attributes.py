"""agent.pdata.attributes: the string and JSON forms of AnyValue shared by the exporters."""

from __future__ import annotations

import math

import pytest

from agent.pdata import proto
from agent.pdata.attributes import set_any_value, value_to_jsonable, value_to_str


def _value(x: object) -> proto.AnyValue:
    v = proto.AnyValue()
    set_any_value(v, x)
    return v


NESTED = {"b": b"\x00\xff", "list": [1, "é", True, None], "f": 1.5}


@pytest.mark.parametrize(("x", "text", "jsonable"), [
    ("plain", "plain", "plain"),
    (True, "true", True),
    (-7, "-7", -7),
    (2.5, "2.5", 2.5),
    (1e20, "1e+20", 1e20),
    (b"\x00\xff", "AP8=", "AP8="),
    ([1, "a", b"\x01"], '[1,"a","AQ=="]', [1, "a", "AQ=="]),
    (NESTED, '{"b":"AP8=","list":[1,"é",true,null],"f":1.5}', {"b": "AP8=", "list": [1, "é", True, None], "f": 1.5}),
    (None, "", None),
])
def test_string_and_jsonable_forms(x: object, text: str, jsonable: object) -> None:
    v = _value(x)
    assert value_to_str(v) == text
    assert value_to_jsonable(v) == jsonable


def test_non_finite_doubles() -> None:
    assert [value_to_str(_value(d)) for d in (math.inf, -math.inf, math.nan)] == ["inf", "-inf", "nan"]
    assert math.isnan(value_to_jsonable(_value(math.nan)))
