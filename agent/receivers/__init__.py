"""Receivers: components that take telemetry in and push it into pipelines.

One folder per receiver type, each exposing ``factory.FACTORY`` (an
:class:`agent.component.Factory` of kind RECEIVER) and registered in
``agent/components.py``. A receiver instance serves every signal it was given
a consumer for, and implements ``start``/``shutdown`` plus ``stop_accepting``
(refuse new data as retryable while in-flight requests finish).
"""
