"""Where things are printed: data on stdout (one JSON document with --json), people's text on stderr.

The JSON result envelope (versioned) is the same for every command:
`{"version": 1, "command": ..., "status": "success" | "partial" | "error", "exit_code": n, ..., "errors": [...]}`."""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime
from typing import Any

from rich.console import Console

ENVELOPE_VERSION = 1
STATUS_BY_EXIT = {0: "success", 3: "partial"}

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(doc: Any) -> str:
    return json.dumps(doc, default=_default, indent=2, ensure_ascii=False)


def emit_json(doc: Any) -> None:
    sys.stdout.write(to_json(doc) + "\n")
    sys.stdout.flush()


def envelope(command: str, exit_code: int, errors: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "version": ENVELOPE_VERSION,
        "command": command,
        "status": STATUS_BY_EXIT.get(exit_code, "error"),
        "exit_code": exit_code,
        **fields,
        "errors": errors or [],
    }


def debug_enabled() -> bool:
    return os.environ.get("TRENDIO_DEBUG", "") not in ("", "0")
