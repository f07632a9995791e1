"""Structured events for schedulers. The library only emits them (stdlib logging, logger
"bulkphone"); the caller decides where they go. The CLI writes one JSON object per line on stderr with
`--log-format json`; in the human format its summary line and the report say it all."""

from __future__ import annotations

import datetime
import json
import logging

__all__ = ["JsonFormatter", "event", "logger", "use_json_logs"]

logger = logging.getLogger("bulkphone")
# A library never prints: without a handler of the caller's, events go nowhere (not to
# logging's last-resort stderr handler).
logger.addHandler(logging.NullHandler())


def event(name: str, level: int = logging.INFO, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"bulkphone_fields": fields})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        data.update(getattr(record, "bulkphone_fields", {}))
        return json.dumps(data, default=str, ensure_ascii=False)


def use_json_logs(stream) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
