"""The decorators every workflow step's handler wears, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from jitr_core.aws import aws_errors_translated

Handler = Callable[[dict[str, Any], Any], Any]

CORRELATION_ID_PATH = "certificateId"
"""Every step's input keeps the registration event's fields at its root."""


def workflow_step(logger: Logger, tracer: Tracer, metrics: Metrics | None = None) -> Callable[[Handler], Handler]:
    """Logging with the certificate id as correlation id, tracing, metrics, and AWS errors translated.

    Outermost first: the logger sees the context and the final error; AWS errors are
    translated closest to the code, so traces and logs show the workflow's error names.
    """

    def decorate(handler: Handler) -> Handler:
        wrapped: Handler = aws_errors_translated()(handler)
        if metrics is not None:
            wrapped = metrics.log_metrics(wrapped)
        wrapped = tracer.capture_lambda_handler(wrapped)
        decorated: Handler = logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)(wrapped)
        return decorated

    return decorate
