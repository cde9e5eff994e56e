"""Metrics: every function's Powertools ``Metrics`` with the stage as a dimension, and a counter over them so the
domain counts things without importing Powertools' types."""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit


def function_metrics() -> Metrics:
    """One per function. The stage is a dimension, so dev's metrics never trip prod's alarms."""
    metrics = Metrics()
    metrics.set_default_dimensions(stage=os.environ.get("STAGE", "dev"))
    return metrics


class MetricCounter:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __call__(self, name: str, value: int = 1) -> None:
        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
