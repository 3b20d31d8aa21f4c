"""The exporterhelper config blocks decode collector YAML with the collector's defaults and rules."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.config.decode import REQUIRED, decode
from agent.errors import ConfigErrors
from agent.exporters.helper import BatchConfig, ExporterConfig, PartitionConfig, QueueConfig, RetryConfig


@dataclass(frozen=True)
class OtlpLike(ExporterConfig):
    endpoint: str = field(default="", metadata=REQUIRED)


def errors_of(data: object) -> str:
    with pytest.raises(ConfigErrors) as info:
        decode(OtlpLike, data, "exporters.otlp")
    return str(info.value)


def test_defaults_are_the_collectors() -> None:
    cfg = decode(OtlpLike, {"endpoint": "jaeger:4317"})
    assert cfg.timeout == 5.0
    assert cfg.retry_on_failure == RetryConfig(True, 5.0, 0.5, 1.5, 30.0, 300.0)
    q = cfg.sending_queue
    assert (q.enabled, q.num_consumers, q.queue_size, q.queue_sizer) == (True, 10, 1000, "requests")
    assert (q.block_on_overflow, q.wait_for_result, q.storage, q.batch) == (False, False, None, None)
    assert BatchConfig() == BatchConfig(0.2, 8192, 0, None, PartitionConfig())


def test_collector_block_decodes() -> None:
    cfg = decode(OtlpLike, {
        "endpoint": "x", "timeout": "10s",
        "retry_on_failure": {"initial_interval": "1s", "max_interval": "2m", "max_elapsed_time": 0},
        "sending_queue": {"num_consumers": 2, "queue_size": 5000, "sizer": "items", "blocking": True,
                          "batch": {"flush_timeout": "1s", "min_size": 100, "max_size": 1000}},
    })
    assert cfg.timeout == 10.0
    assert cfg.retry_on_failure.max_interval == 120.0 and cfg.retry_on_failure.max_elapsed_time == 0
    q = cfg.sending_queue
    assert q.blocks and q.queue_sizer == "items" and q.batch_sizer == "items"
    assert q.batch == BatchConfig(1.0, 100, 1000, None, PartitionConfig())


def test_present_but_empty_batch_turns_batching_on_with_defaults() -> None:
    cfg = decode(OtlpLike, {"endpoint": "x", "sending_queue": {"batch": None, "sizer": "items",
                                                               "queue_size": 10000}})
    assert cfg.sending_queue.batch == BatchConfig()


def test_batch_sizer_defaults_to_items_unless_the_queue_sizer_is_set() -> None:
    assert QueueConfig(batch=BatchConfig()).batch_sizer == "items"
    assert QueueConfig(sizer="bytes", batch=BatchConfig()).batch_sizer == "bytes"
    text = errors_of({"endpoint": "x", "sending_queue": {"sizer": "requests", "batch": {}}})
    assert "exporters.otlp.sending_queue.batch.sizer" in text and "requests" in text
    assert "only `items` or `bytes`" in errors_of({"endpoint": "x", "sending_queue": {"batch": {"sizer": "requests"}}})


def test_persistent_queue_storage_takes_an_extension_id() -> None:
    cfg = decode(OtlpLike, {"endpoint": "x", "sending_queue": {"storage": "file_storage/queues"}})
    assert cfg.sending_queue.storage == "file_storage/queues"
    text = errors_of({"endpoint": "x", "sending_queue": {"storage": "file_storage/"}})
    assert "exporters.otlp.sending_queue.storage: component id 'file_storage/' has an empty name" in text


def test_partition_by_metadata_is_refused_clearly() -> None:
    text = errors_of({"endpoint": "x", "sending_queue": {"batch": {"partition": {"metadata_keys": ["tenant"]}}}})
    assert "sending_queue.batch.partition.metadata_keys" in text and "not implemented by otel-sidecar" in text


@pytest.mark.parametrize(("block", "message"), [
    ({"sending_queue": {"num_consumers": 0}}, "`num_consumers` must be positive"),
    ({"sending_queue": {"queue_size": 0}}, "`queue_size` must be positive"),
    ({"sending_queue": {"sizer": "lines"}}, "expected one of requests, items, bytes"),
    ({"sending_queue": {"queue_size": 10, "sizer": "items", "batch": {"min_size": 100}}},
     "`min_size` must be less than or equal to `queue_size`"),
    ({"sending_queue": {"batch": {"min_size": 10, "max_size": 5}}}, "must be greater or equal to `min_size`"),
    ({"sending_queue": {"batch": {"flush_timeout": 0}}}, "`flush_timeout` must be positive"),
    ({"retry_on_failure": {"randomization_factor": 2}}, "'randomization_factor' must be within [0, 1]"),
    ({"retry_on_failure": {"initial_interval": "10s", "max_elapsed_time": "5s"}},
     "'max_elapsed_time' must not be less than 'initial_interval'"),
    ({"retry_on_failure": {"max_elapsed_time": "10s"}}, "'max_elapsed_time' must not be less than 'max_interval'"),
    ({"timeout": "-1s"}, "'timeout' must be non-negative"),
    ({"sending_queue": {"num_consumer": 1}}, "sending_queue.num_consumer: unknown key"),
])
def test_invalid_blocks(block: dict[str, object], message: str) -> None:
    assert message in errors_of({"endpoint": "x", **block})


def test_disabled_blocks_are_not_validated() -> None:
    cfg = decode(OtlpLike, {"endpoint": "x", "sending_queue": {"enabled": False, "num_consumers": 0},
                            "retry_on_failure": {"enabled": False, "multiplier": -1}})
    assert not cfg.sending_queue.enabled and not cfg.retry_on_failure.enabled
