"""Renders shared by the chart tests: each values set once per session (one `helm template` is ~0.1 s)."""

from __future__ import annotations

import pytest

from tests.deploy.helm.chart import MINIMAL_VALUES, VALUES_FILES, Rendered, render


@pytest.fixture(scope="session", params=VALUES_FILES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """The chart rendered with each ci/*-values.yaml, on a cluster with the Prometheus Operator."""
    return render(request.param)


@pytest.fixture(scope="session")
def minimal() -> Rendered:
    """The chart with the least values it needs, on a cluster with the Prometheus Operator."""
    return render(MINIMAL_VALUES)


@pytest.fixture(scope="session")
def without_operator() -> Rendered:
    """The same on a cluster without the Prometheus Operator's API (monitoring.coreos.com/v1)."""
    return render(MINIMAL_VALUES, operator=False)
