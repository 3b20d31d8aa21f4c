"""The ``prometheus`` exporter: OTLP metrics served on ``/metrics`` for Prometheus to scrape.

Modules, in data-flow order:

* :mod:`.config`: the collector's options plus cardinality caps and the
  exponential-histogram layout;
* :mod:`.translate`: names, unit suffixes, labels (``job``/``instance``,
  scope labels, collisions), escaping;
* :mod:`.values`: per point type values and arithmetic;
  :mod:`.exphist`: exponential-bucket math;
* :mod:`.accumulator`: the series store (last value, delta -> cumulative,
  resets, expiry, caps, overflow, TYPE conflicts); shared with
  ``prometheusremotewrite``;
* :mod:`.render` (text 0.0.4, OpenMetrics 1.0, negotiation) and
  :mod:`.nativehist` (protobuf exposition with native histograms);
* :mod:`.server` (``/metrics``, rendering off the event loop) and
  :mod:`.exporter` (the component: fold on consume, expiry timer).

Invariants: points are folded straight from the OTLP protobuf into series (no
intermediate dicts); a series' label block is formatted once; values are
immutable so renders can run in a worker thread while the loop ingests.
"""

from agent.exporters.prometheus.config import Config
from agent.exporters.prometheus.exporter import PrometheusExporter
from agent.exporters.prometheus.factory import FACTORY

__all__ = ["FACTORY", "Config", "PrometheusExporter"]
