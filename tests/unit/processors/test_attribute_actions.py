"""The attribute action engine shared by ``attributes`` and ``resource``: every action and value type."""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from typing import Any

import pytest

from agent.config.decode import decode
from agent.pdata import proto
from agent.pdata.attributes import set_any_value, value_to_python
from agent.processors.attributes.actions import ActionConfig, ActionPlan, compile_go_regex, convert_value

LOG = logging.getLogger("test.actions")


def _attrs(**values: Any) -> Any:
    res = proto.Resource()
    for k, v in values.items():
        kv = res.attributes.add()
        kv.key = k
        set_any_value(kv.value, v)
    return res.attributes


def _run(actions: list[dict[str, Any]], attrs: Any) -> dict[str, Any]:
    plan = ActionPlan([decode(ActionConfig, a, "a") for a in actions], LOG)
    plan(attrs)
    return {kv.key: value_to_python(kv.value) for kv in attrs}


def _kinds(attrs: Any) -> dict[str, str | None]:
    return {kv.key: kv.value.WhichOneof("value") for kv in attrs}


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("value", ["text", 42, -1.5, True, [1, "a", False], {"k": "v", "n": {"x": 1}}])
def test_insert_update_upsert_with_each_value_type(value: Any) -> None:
    assert _run([{"key": "new", "action": "insert", "value": value}], _attrs(a=1)) == {"a": 1, "new": value}
    assert _run([{"key": "a", "action": "insert", "value": value}], _attrs(a=1)) == {"a": 1}
    assert _run([{"key": "a", "action": "update", "value": value}], _attrs(a=1)) == {"a": value}
    assert _run([{"key": "b", "action": "update", "value": value}], _attrs(a=1)) == {"a": 1}
    assert _run([{"key": "a", "action": "upsert", "value": value}], _attrs(a=1)) == {"a": value}
    assert _run([{"key": "b", "action": "upsert", "value": value}], _attrs(a=1)) == {"a": 1, "b": value}


def test_value_types_are_kept() -> None:
    attrs = _attrs()
    _run([{"key": "s", "action": "insert", "value": "1"}, {"key": "i", "action": "insert", "value": 1},
          {"key": "d", "action": "insert", "value": 1.0}, {"key": "b", "action": "insert", "value": False}], attrs)
    assert _kinds(attrs) == {"s": "string_value", "i": "int_value", "d": "double_value", "b": "bool_value"}


def test_from_attribute_copies_the_value_and_skips_when_absent() -> None:
    actions = [{"key": "copy", "action": "insert", "from_attribute": "src"}]
    assert _run(actions, _attrs(src=[1, 2])) == {"src": [1, 2], "copy": [1, 2]}
    assert _run(actions, _attrs(other=1)) == {"other": 1}
    assert _run([{"key": "dst", "action": "update", "from_attribute": "src"}], _attrs(src="x", dst="y")) == {
        "src": "x", "dst": "x"}
    assert _run([{"key": "dst", "action": "upsert", "from_attribute": "missing"}], _attrs(dst="y")) == {"dst": "y"}
    assert _run([{"key": "src", "action": "upsert", "from_attribute": "src"}], _attrs(src="same")) == {"src": "same"}


def test_insert_from_attribute_while_the_list_grows() -> None:
    attrs = _attrs(**{f"k{i}": f"v{i}" for i in range(50)})
    actions = [{"key": f"copy{i}", "action": "insert", "from_attribute": f"k{i}"} for i in range(50)]
    out = _run(actions, attrs)
    assert all(out[f"copy{i}"] == f"v{i}" for i in range(50))


def test_delete_by_key_pattern_or_both() -> None:
    attrs = dict(password="p", db_password="q", user="u", token="t")
    assert _run([{"key": "user", "action": "delete"}], _attrs(**attrs)) == {
        "password": "p", "db_password": "q", "token": "t"}
    assert _run([{"action": "delete", "pattern": "password$"}], _attrs(**attrs)) == {"user": "u", "token": "t"}
    assert _run([{"key": "token", "action": "delete", "pattern": "^db_"}], _attrs(**attrs)) == {
        "password": "p", "user": "u"}
    assert _run([{"key": "absent", "action": "delete"}], _attrs(a=1)) == {"a": 1}


def test_hash_uses_sha256_of_the_collectors_byte_forms() -> None:
    attrs = _attrs(s="secret", i=-2, d=1.5, t=True, f=False, e="", b=b"raw", arr=[1], m={"k": 1})
    out = _run([{"action": "hash", "pattern": ".*"}], attrs)
    assert out["s"] == _sha(b"secret") == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    assert out["i"] == _sha(struct.pack("<q", -2))
    assert out["d"] == _sha(struct.pack("<d", 1.5))
    assert out["t"] == _sha(b"\x01") and out["f"] == _sha(b"\x00")
    assert out["e"] == out["b"] == out["arr"] == out["m"] == ""
    assert set(_kinds(attrs).values()) == {"string_value"}


def test_hash_by_key_and_pattern_hashes_each_attribute_once() -> None:
    out = _run([{"key": "email", "action": "hash", "pattern": "^e"}], _attrs(email="a@b", extra="x", other="o"))
    assert out == {"email": _sha(b"a@b"), "extra": _sha(b"x"), "other": "o"}
    assert _run([{"key": "absent", "action": "hash"}], _attrs(a="1")) == {"a": "1"}


def test_extract_named_groups() -> None:
    actions = [{"key": "http.url", "action": "extract",
                "pattern": r"^(?P<http_protocol>.*):\/\/(?P<http_domain>[^/]*)(?P<http_path>/[^?]*)?(?:\?(?P<q>.*))?$"}]
    out = _run(actions, _attrs(**{"http.url": "https://example.com/a/b", "http_domain": "old"}))
    assert out == {"http.url": "https://example.com/a/b", "http_domain": "example.com",
                   "http_protocol": "https", "http_path": "/a/b", "q": ""}
    assert _run(actions, _attrs(**{"http.url": "not a url"})) == {"http.url": "not a url"}
    assert _run(actions, _attrs(**{"http.url": 7})) == {"http.url": 7}
    assert _run(actions, _attrs(other="x")) == {"other": "x"}


def test_extract_accepts_go_named_groups_and_search_semantics() -> None:
    out = _run([{"key": "msg", "action": "extract", "pattern": r"user=(?<user>\w+)\z"}], _attrs(msg="x user=bob"))
    assert out["user"] == "bob"
    assert compile_go_regex(r"(?<=a)b(?<!c)").search("ab")  # look-arounds untouched


@pytest.mark.parametrize(("value", "to", "expected"), [
    ("123", "int", 123), ("+5", "int", 5), ("-7", "int", -7), (" 5", "int", " 5"), ("1.5", "int", "1.5"),
    ("99999999999999999999", "int", "99999999999999999999"), ("1_000", "int", "1_000"),
    (3.9, "int", 3), (-3.9, "int", -3), (True, "int", 1), (False, "int", 0), (7, "int", 7),
    ([1], "int", [1]), (1e300, "int", 1e300),
    ("1e3", "double", 1000.0), ("-2.5", "double", -2.5), ("0x1p-2", "double", 0.25), (".5", "double", 0.5),
    ("abc", "double", "abc"), ("1e400", "double", "1e400"), (3, "double", 3.0), (True, "double", 1.0),
    (2.5, "double", 2.5), ({"a": 1}, "double", {"a": 1}),
    (12, "string", "12"), (2.5, "string", "2.5"), (True, "string", "true"), (b"\x00\x01", "string", "AAE="),
    ([1, "a"], "string", '[1,"a"]'), ({"k": 1}, "string", '{"k":1}'), ("same", "string", "same"),
])
def test_convert(value: Any, to: str, expected: Any) -> None:
    out = _run([{"key": "v", "action": "convert", "converted_type": to}], _attrs(v=value))
    assert out == {"v": expected}
    assert type(out["v"]) is type(expected)


def test_convert_special_floats() -> None:
    v = proto.AnyValue(string_value="-Inf")
    assert convert_value(v, "double") and v.double_value == -math.inf
    v = proto.AnyValue(string_value="NaN")
    assert convert_value(v, "double") and math.isnan(v.double_value)
    v = proto.AnyValue(double_value=math.nan)
    assert not convert_value(v, "int") and math.isnan(v.double_value)
    v = proto.AnyValue()
    assert convert_value(v, "string") and v.WhichOneof("value") == "string_value"
    assert not convert_value(proto.AnyValue(), "int")


def test_convert_absent_key_does_nothing() -> None:
    assert _run([{"key": "x", "action": "convert", "converted_type": "int"}], _attrs(a="1")) == {"a": "1"}


def test_actions_run_in_order() -> None:
    actions = [
        {"key": "tmp", "action": "insert", "from_attribute": "user.id"},
        {"key": "tmp", "action": "hash"},
        {"key": "user.hash", "action": "upsert", "from_attribute": "tmp"},
        {"key": "tmp", "action": "delete"},
        {"key": "user.id", "action": "delete"},
        {"key": "code", "action": "convert", "converted_type": "int"},
    ]
    out = _run(actions, _attrs(**{"user.id": "42", "code": "200"}))
    assert out == {"user.hash": _sha(b"42"), "code": 200}


def test_plan_is_falsey_when_empty_and_rejects_unvalidated_input() -> None:
    assert not ActionPlan([], LOG)
    with pytest.raises(ValueError):
        ActionPlan([ActionConfig(key="k", action="extract", pattern="(")], LOG)
