"""The prediction service: HTTP API, request log and Prometheus metrics."""
