"""The ``health_check`` extension: HTTP liveness/readiness for probes."""
