"""Config decoding of the four processors: collector defaults and every validation error with its path."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config.decode import decode
from agent.errors import ConfigErrors
from agent.processors.attributes import Config as AttributesConfig
from agent.processors.batch import Config as BatchConfig
from agent.processors.memory_limiter import Config as MemoryLimiterConfig
from agent.processors.resource import Config as ResourceConfig


def _errors(cls: type[Any], data: Any, path: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        decode(cls, data, path)
    return [str(e) for e in info.value.errors]


# -- batch -----------------------------------------------------------------------------

def test_batch_defaults_are_the_collectors() -> None:
    raws: tuple[dict[str, Any] | None, ...] = (None, {})
    for raw in raws:
        cfg = decode(BatchConfig, raw, "processors.batch")
        assert (cfg.send_batch_size, cfg.send_batch_max_size, cfg.timeout) == (8192, 0, 0.2)
        assert cfg.metadata_keys == [] and cfg.metadata_cardinality_limit == 1000
        assert not cfg.passthrough


def test_batch_accepts_collector_options() -> None:
    cfg = decode(BatchConfig, {"send_batch_size": 100, "send_batch_max_size": 100, "timeout": "1m30s",
                               "metadata_keys": [], "metadata_cardinality_limit": 10}, "processors.batch")
    assert cfg.timeout == 90.0
    assert decode(BatchConfig, {"timeout": "0s"}, "").passthrough


@pytest.mark.parametrize(("data", "expected"), [
    ({"send_batch_size": 100, "send_batch_max_size": 50},
     "processors.batch.send_batch_max_size: must be greater than or equal to send_batch_size (100), or 0 for no limit"),
    ({"send_batch_max_size": 10}, "processors.batch.send_batch_max_size: must be greater than or equal to "
                                  "send_batch_size (8192), or 0 for no limit"),
    ({"metadata_keys": ["tenant_id"]}, "processors.batch.metadata_keys: batching by client metadata is not "
                                       "implemented by otel-sidecar"),
    ({"timeout": "-1s"}, "processors.batch.timeout: must be greater than or equal to 0"),
    ({"send_batch_size": -1}, "processors.batch.send_batch_size: must not be negative"),
    ({"timeout": 5}, "processors.batch.timeout: expected a duration with a unit"),
    ({"send_batch_sise": 5}, "processors.batch.send_batch_sise: unknown key"),
])
def test_batch_validation_errors_name_the_path(data: dict[str, Any], expected: str) -> None:
    errors = _errors(BatchConfig, data, "processors.batch")
    assert any(e.startswith(expected) for e in errors), errors


# -- memory_limiter -----------------------------------------------------------------------

def test_memory_limiter_accepts_collector_configs() -> None:
    cfg = decode(MemoryLimiterConfig, {"check_interval": "1s", "limit_mib": 512, "spike_limit_mib": 128},
                 "processors.memory_limiter")
    assert (cfg.check_interval, cfg.limit_mib, cfg.spike_limit_mib) == (1.0, 512, 128)
    assert cfg.min_gc_interval_when_soft_limited == 10.0 and cfg.min_gc_interval_when_hard_limited == 0.0
    cfg = decode(MemoryLimiterConfig, {"check_interval": "500ms", "limit_percentage": 75,
                                       "spike_limit_percentage": 15}, "")
    assert cfg.limit_percentage == 75


@pytest.mark.parametrize(("data", "expected"), [
    ({"limit_mib": 100}, "processors.memory_limiter.check_interval: must be greater than zero"),
    ({"check_interval": 0, "limit_mib": 100}, "processors.memory_limiter.check_interval: must be greater than zero"),
    ({"check_interval": "1s"}, "processors.memory_limiter.limit_mib: one of limit_mib or limit_percentage"),
    ({"check_interval": "1s", "limit_mib": 100, "limit_percentage": 50},
     "processors.memory_limiter.limit_percentage: set either limit_mib or limit_percentage, not both"),
    ({"check_interval": "1s", "limit_mib": 100, "spike_limit_mib": 100},
     "processors.memory_limiter.spike_limit_mib: must be smaller than limit_mib (100)"),
    ({"check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 60},
     "processors.memory_limiter.spike_limit_percentage: must be smaller than limit_percentage (50)"),
    ({"check_interval": "1s", "limit_percentage": 150},
     "processors.memory_limiter.limit_percentage: must be at most 100"),
    ({"check_interval": "1s", "limit_mib": 100, "spike_limit_percentage": 10},
     "processors.memory_limiter.spike_limit_percentage: applies only with limit_percentage"),
    ({"check_interval": "1s", "limit_percentage": 50, "spike_limit_mib": 10},
     "processors.memory_limiter.spike_limit_mib: applies only with limit_mib"),
    ({"check_interval": "1s", "limit_mib": -5}, "processors.memory_limiter.limit_mib: must not be negative"),
    ({"check_interval": "1s", "limit_mib": 100, "min_gc_interval_when_hard_limited": "20s"},
     "processors.memory_limiter.min_gc_interval_when_soft_limited: must be greater than or equal to"),
])
def test_memory_limiter_validation_errors_name_the_path(data: dict[str, Any], expected: str) -> None:
    errors = _errors(MemoryLimiterConfig, data, "processors.memory_limiter")
    assert any(e.startswith(expected) for e in errors), errors


# -- attributes and resource ----------------------------------------------------------------

def test_attributes_config_decodes_actions_and_matching() -> None:
    cfg = decode(AttributesConfig, {
        "actions": [{"key": "a", "action": "INSERT", "value": 1},
                    {"action": "delete", "pattern": "^secret"},
                    {"key": "u", "action": "extract", "pattern": "(?P<x>.)"},
                    {"key": "c", "action": "convert", "converted_type": "double"}],
        "include": {"match_type": "regexp", "services": ["api.*"],
                    "libraries": [{"name": "x", "version": "1"}]},
        "exclude": {"match_type": "strict", "attributes": [{"key": "k", "value": [1, 2]}]},
    }, "processors.attributes")
    assert cfg.actions[0].action == "insert"  # case-insensitive, as in the collector
    assert cfg.include is not None and cfg.include.libraries[0].version == "1"


@pytest.mark.parametrize(("action", "expected"), [
    ({"key": "a", "action": "insert"}, "actions[1].value: required for action insert (or set from_attribute)"),
    ({"key": "a", "action": "upsert", "value": 1, "from_attribute": "b"},
     "actions[1].value: set only one of value, from_attribute or from_context"),
    ({"action": "update", "value": 1}, "actions[1].key: required for action update"),
    ({"action": "delete"}, "actions[1].key: required for action delete unless pattern is set"),
    ({"action": "hash"}, "actions[1].key: required for action hash unless pattern is set"),
    ({"key": "a", "action": "delete", "value": 1}, "actions[1].value: not used by action delete"),
    ({"key": "a", "action": "hash", "pattern": "(["}, "actions[1].pattern: invalid regular expression"),
    ({"key": "a", "action": "extract"}, "actions[1].pattern: required for action extract"),
    ({"key": "a", "action": "extract", "pattern": "abc"}, "actions[1].pattern: must contain named groups"),
    ({"key": "a", "action": "extract", "pattern": "(?P<x>a)(b)"}, "actions[1].pattern: every group must be named"),
    ({"key": "a", "action": "extract", "pattern": "(?P<x>a)", "from_attribute": "b"},
     "actions[1].from_attribute: not used by action extract"),
    ({"key": "a", "action": "convert"}, "actions[1].converted_type: required for action convert"),
    ({"key": "a", "action": "convert", "converted_type": "bool"},
     "actions[1].converted_type: invalid value 'bool'; expected one of int, double, string"),
    ({"key": "a", "action": "convert", "converted_type": "int", "pattern": "x"},
     "actions[1].pattern: not used by action convert"),
    ({"key": "a", "action": "insert", "value": 1, "pattern": "x"}, "actions[1].pattern: not used by action insert"),
    ({"key": "a", "action": "insert", "from_context": "metadata.tenant"},
     "actions[1].from_context: not implemented by otel-sidecar"),
    ({"key": "a", "action": "insert", "value": 2**70}, "actions[1].value: cannot be stored as an attribute value"),
    ({"key": "a", "action": "rename"}, "actions[1].action: invalid value 'rename'"),
    ({"key": "a"}, "actions[1].action: required"),
    ({"key": "a", "action": "insert", "value": 1, "valeu": 2}, "actions[1].valeu: unknown key"),
])
def test_attributes_action_errors_name_the_path(action: dict[str, Any], expected: str) -> None:
    data = {"actions": [{"key": "ok", "action": "delete"}, action]}
    errors = _errors(AttributesConfig, data, "processors.attributes")
    assert any(e.startswith("processors.attributes." + expected) for e in errors), errors
    errors = _errors(ResourceConfig, {"attributes": data["actions"]}, "processors.resource")
    assert any(e.startswith("processors.resource." + expected.replace("actions[", "attributes[")) for e in errors)


@pytest.mark.parametrize(("block", "expected"), [
    ({"services": ["x"]}, "include.match_type: required"),
    ({"match_type": "expr", "services": ["x"]}, "include.match_type: expr is not implemented by otel-sidecar"),
    ({"match_type": "strict"}, "include: at least one of services, span_names"),
    ({"match_type": "fuzzy", "services": ["x"]}, "include.match_type: invalid value 'fuzzy'"),
    ({"match_type": "regexp", "span_names": ["ok", "(bad"]}, "include.span_names[1]: invalid regular expression"),
    ({"match_type": "regexp", "attributes": [{"key": "k", "value": 5}]},
     "include.attributes[0].value: match_type regexp needs a string pattern"),
    ({"match_type": "strict", "attributes": [{"value": 5}]}, "include.attributes[0].key: required"),
    ({"match_type": "strict", "span_kinds": ["server"]}, "include.span_kinds[0]: invalid span kind 'server'"),
    ({"match_type": "strict", "log_severity_number": {"min": "LOUD"}},
     "include.log_severity_number.min: unknown severity 'LOUD'"),
    ({"match_type": "strict", "log_severity_number": {"min": 30}},
     "include.log_severity_number.min: severity number 30 outside 0..24"),
    ({"match_type": "regexp", "libraries": [{"name": "("}]}, "include.libraries[0].name: invalid regular expression"),
    ({"match_type": "regexp", "regexp": {"cachemaxnumentries": -1}, "services": ["x"]},
     "include.regexp.cachemaxnumentries: must not be negative"),
    ({"match_type": "strict", "expressions": ["x"]}, "include.expressions: unknown key"),
])
def test_match_errors_name_the_path(block: dict[str, Any], expected: str) -> None:
    errors = _errors(AttributesConfig, {"actions": [{"key": "a", "action": "delete"}], "include": block},
                     "processors.attributes")
    assert any(e.startswith("processors.attributes." + expected) for e in errors), errors


def test_actions_are_required() -> None:
    assert _errors(AttributesConfig, {}, "processors.attributes") == [
        "processors.attributes.actions: required: at least one action"]
    assert _errors(ResourceConfig, {"attributes": []}, "processors.resource") == [
        "processors.resource.attributes: required: at least one action"]
    assert _errors(ResourceConfig, {"actions": [{"key": "a", "action": "delete"}]}, "processors.resource")[0] \
        .startswith("processors.resource.actions: unknown key; valid keys: attributes")
