"""`trendio creators`: creators with their history and flags; flag, unflag or block by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from trendio_cli.errors import BadInput
from trendio_cli.ledger import Ledger, iso

FLAGS = ("blocked", "unresponsive", "inactive", "ineligible")


def _brand(ledger: Ledger, brand: str | None) -> str:
    if brand:
        return brand
    brands = ledger.brands()
    if len(brands) == 1:
        return brands[0]
    raise BadInput("--brand is needed: the ledger holds " + (", ".join(brands) if brands else "no brand yet"))


def list_creators(ledger_path: str, brand: str | None, *, flag: str | None, creator_ids: list[str] | None,
                  limit: int) -> dict[str, Any]:
    """Creators and their counts; with `creator_ids`, each one's history too (an id the ledger does not
    know is BadInput: a mistyped id is not an empty history)."""
    with Ledger.open(ledger_path, readonly=True, migrate=True, must_exist=True) as ledger:
        b = _brand(ledger, brand)
        rows = ledger.creators_summary(b, flag=flag, creator_ids=creator_ids, limit=limit)
        history = {}
        if creator_ids:
            unknown = [cid for cid in dict.fromkeys(creator_ids) if cid not in {r["creator_id"] for r in rows}]
            if unknown:
                raise BadInput(f"not in the ledger for brand {b}: {', '.join(unknown)}",
                               hint="`trendio creators list` shows the creators it knows")
            for cid in creator_ids:
                history[cid] = [{k: r[k] for k in ("campaign", "product_id", "tier", "state", "collaboration_id",
                                                   "claimed_at", "sent_at", "answered_at", "code", "message")}
                                for r in ledger.creator_invitations(b, cid)]
    return {"brand": b, "creators": rows, "history": history}


def set_flag(ledger_path: str, brand: str | None, creator_ids: list[str], flag: str | None, *,
             days: int | None = None, reason: str | None = None) -> dict[str, Any]:
    """Flag (or unflag) creators by hand. An id the ledger does not know yet is flagged all the same (a block
    is meant for the future too) and listed in `unknown`."""
    if flag is not None and flag not in FLAGS:
        raise BadInput(f"flag must be one of {', '.join(FLAGS)}")
    with Ledger.open(ledger_path, must_exist=True) as ledger:
        b = _brand(ledger, brand)
        known = {r["creator_id"] for r in ledger.creators_summary(b, creator_ids=creator_ids,
                                                                   limit=len(creator_ids))}
        if flag is None:
            ledger.unflag_creators(b, creator_ids)
        else:
            until = iso((datetime.now(timezone.utc) + timedelta(days=days)).timestamp()) if days else None
            ledger.flag_creators(b, creator_ids, flag, reason or "set by hand", until)
        rows = ledger.creators_summary(b, creator_ids=creator_ids, limit=len(creator_ids))
    return {"brand": b, "flag": flag, "creators": rows,
            "unknown": [cid for cid in dict.fromkeys(creator_ids) if cid not in known]}
