"""Self-telemetry: the collector's ``otelcol_*`` metrics and JSON logs."""
