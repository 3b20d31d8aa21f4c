"""The ``prometheusremotewrite`` exporter: OTLP metrics pushed with Prometheus remote write 1.0.

* :mod:`.config`: the collector's keys (``remote_write_queue``, ``external_labels``,
  ``target_info``...) mapped onto the exporter helper;
* :mod:`.writerequest`: ``WriteRequest`` encoding (hand-written protobuf) from
  the series store, including native histograms and stale markers;
* :mod:`.exporter`: the component (fold, encode, compress, queue, push).

It shares the ``prometheus`` exporter's series store and translation
(:mod:`agent.exporters.prometheus.accumulator`), so delta temporality is
accumulated into cumulative series, and names and labels are identical in
both exporters.
"""

from agent.exporters.prometheusremotewrite.config import Config
from agent.exporters.prometheusremotewrite.exporter import RemoteWriteExporter
from agent.exporters.prometheusremotewrite.factory import FACTORY

__all__ = ["FACTORY", "Config", "RemoteWriteExporter"]
