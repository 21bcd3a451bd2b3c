"""`trendio ledger export` / `import`: a ledger as JSON lines, to move it between files and backends
without loss (the first line says what it is; then one line per row: {"table": ..., "row": {...}})."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from trendio_cli.errors import BadInput, LedgerError
from trendio_cli.ledger import SCHEMA_VERSION, Ledger
from trendio_cli.output import private_file

FORMAT = "trendio-ledger-export"


def export_ledger(ledger_path: str, out: Path | None) -> dict[str, int]:
    """Write the export to `out` (0600, whole or not at all: it is a full copy of the ledger) or stdout."""
    with Ledger.open(ledger_path, readonly=True, migrate=True, must_exist=True) as ledger:
        if out is None:
            return _write_export(ledger, sys.stdout)
        with private_file(out) as fh:
            return _write_export(ledger, fh)


def _write_export(ledger: Ledger, fh: IO[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    fh.write(json.dumps({"format": FORMAT, "version": 1, "schema": SCHEMA_VERSION}) + "\n")
    for table, row in ledger.export_rows():
        fh.write(json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n")
        counts[table] = counts.get(table, 0) + 1
    return counts


def _read(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise BadInput(f"{path}:{n}:{getattr(exc, 'colno', 1)}: not JSON: {exc.args[0]}") from None
            if n == 1:
                if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                    raise BadInput(f"{path}:1:1: not a trendio ledger export")
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("row"), dict) or "table" not in doc:
                raise BadInput(f"{path}:{n}:1: a line must be {{\"table\": ..., \"row\": {{...}}}}")
            yield doc["table"], doc["row"]


def import_ledger(ledger_path: str, source: Path) -> dict[str, int]:
    if not source.is_file():
        raise BadInput(f"{source}: no such export file")
    with Ledger.open(ledger_path) as ledger:
        if not ledger.is_empty():
            raise BadInput(f"{ledger.path}: the ledger is not empty; import into a new ledger")
        try:
            return ledger.import_rows(_read(source))
        except LedgerError as exc:
            raise BadInput(f"{source}: {exc.message}") from None
