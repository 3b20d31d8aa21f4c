"""Processors: components between the receivers and the exporters of one pipeline.

Each processor lives in its own package (``batch``, ``memory_limiter``,
``resource``, ``attributes``) with the collector's layout: ``config.py`` (the
user's YAML as a frozen dataclass and its ``validate``), ``factory.py`` (the
``FACTORY`` the registry loads) and ``processor.py`` (the running component).

Invariants shared by every processor here:

* **One instance per pipeline.** A factory's ``create(settings, config, signal,
  next_consumer)`` builds an instance for one signal; it forwards to
  ``next_consumer`` through :func:`agent.consumer.consume_fn`.
* **Ownership.** A processor that edits data declares
  ``Capabilities(mutates_data=True)`` and calls ``PData.mutable()`` before the
  first edit, which drops the cached wire bytes. ``batch`` and
  ``memory_limiter`` never edit what they are handed.
* **Errors.** Errors of the next consumer propagate to the caller, except in
  ``batch`` once data is buffered (the caller was already told OK): those are
  logged once per batch and counted as dropped.
* **Blocking.** Nothing blocks the event loop. Backpressure is an ``await``
  (``batch`` when its buffer is full) or a retryable refusal
  (``memory_limiter``'s :class:`agent.errors.MemoryLimitError`).
* **Lifecycle.** ``start`` launches background tasks, ``shutdown`` stops them;
  ``shutdown`` is safe twice and without ``start``.
"""
