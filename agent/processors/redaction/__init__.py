"""The ``redaction`` processor: the collector-contrib processor's config and semantics, extended.

* :mod:`.config`: the collector's keys (``allow_all_keys``, ``allowed_keys`` failing closed,
  ``ignored_keys``, ``blocked_key_patterns``, ``blocked_values``, ``allowed_values``,
  ``hash_function``, ``summary``...) plus ``presets``.
* :mod:`.presets`: the built-in detectors and their exact semantics (shared with ``instrumentation/``).
* :mod:`.redactor`: the rule engine on OTLP attribute lists and values.
* :mod:`.processor`: walks traces, logs and metrics, counts redactions.
* :mod:`.factory`: ``FACTORY`` for the registry.

Invariants: secrets are never logged or exported in self-metrics (only counts by
reason); every string location of the three signals is covered (attributes at
every level, log bodies, span names, status messages, events, links, exemplars).
"""
