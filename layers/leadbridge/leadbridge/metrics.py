"""A counter over Powertools metrics, so the domain counts things without importing Powertools' types."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit


class MetricCounter:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __call__(self, name: str, value: int = 1) -> None:
        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
