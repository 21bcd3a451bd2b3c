"""`trendio status` and `trendio runs`: views of the ledger (read only; a missing ledger is an error, never
an empty view)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from trendio_cli.ledger import Ledger
from trendio_cli.quota import QuotaDay


def ledger_status(ledger_path: str, brand: str | None = None) -> dict[str, Any]:
    with Ledger.open(ledger_path, readonly=True, migrate=True, must_exist=True) as ledger:
        brands = [brand] if brand else ledger.brands()
        today = QuotaDay.at(datetime.now(timezone.utc))
        out = []
        for b in brands:
            out.append({
                "brand": b,
                "invitations": ledger.invitation_states(b),
                "requests_today": ledger.calls_used(b, today.day),
                "pending": len(ledger.pending(b)),
            })
        return {"ledger": ledger.path, "quota_day_utc": today.day, "brands": out,
                "locks": ledger.locks(), "last_runs": ledger.runs(limit=5, brand=brand)}


def run_history(ledger_path: str, limit: int = 20, brand: str | None = None) -> dict[str, Any]:
    with Ledger.open(ledger_path, readonly=True, migrate=True, must_exist=True) as ledger:
        return {"ledger": ledger.path, "runs": ledger.runs(limit=limit, brand=brand)}
