"""auth_api: the example FastAPI + SQLAlchemy authentication service instrumented by otel-sidecar.

Run it with ``opentelemetry-instrument uvicorn auth_api.main:app`` from ``deploy/example-backend``
(see that folder's README). The application code knows nothing about OpenTelemetry except the
few calls to :mod:`instrumentation` (``set_user_id`` and the business-metric helpers).
"""
