"""The ``tail_sampling`` processor: whole-trace sampling decided after ``decision_wait``.

A sidecar sees only its own pod's spans, so its decisions are per pod; for
cross-service decisions run tail sampling in a gateway tier behind a
trace-id-aware load balancer (see the README).

Modules: :mod:`.config` (keys, defaults, the implemented policy subset),
:mod:`.policies` (evaluators and the decision rule), :mod:`.wire` (byte-level
request views and re-framing), :mod:`.processor` (buffering, timing, bounded
memory, late spans) and :mod:`.factory`.
"""
