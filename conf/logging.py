"""Structured (JSON) logging for every StreamLake process: one line per event, `extra` fields as keys."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

# Spark's py4j, Kafka's clients and Great Expectations chat at INFO; operators need our lines, not theirs.
_QUIET_LOGGERS = ("py4j", "urllib3", "great_expectations")


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
