"""Grafana dashboards of the stack, generated from code (``python -m dashboards.build``), and their provisioning."""
