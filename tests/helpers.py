"""Helpers shared by the tests: campaign files made on the fly, the CLI as a real subprocess."""

from __future__ import annotations

# --- helpers shared by the core tests ---------------------------------------------------------------
import json as _json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from trendio_cli.sandbox.marketplace import write_creators_file

REPO = Path(__file__).resolve().parent.parent


def campaign_dict(**overrides):
    doc = {
        "campaign": "test-campaign",
        "brand": "testbrand",
        "products": [{"id": "1729384756", "commission": "15%"}, {"id": "1729384757", "commission": 0.12},
                     {"id": "1729384758", "commission": 1000}],
        "message": "Hi! {brand} would love to work with you on {product_count} products.",
        "end_date": "2099-12-31",
        "contact_email": "partners@test.example",
        "free_sample": True,
        "creators": {"file": "creators.csv"},
        "tiers": [{"name": "macro", "min_followers": 100000}, {"name": "mid", "min_followers": 10000},
                  {"name": "micro", "min_followers": 0}],
        "schedule": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "daily_target": 1_000_000},
    }
    # tests send whole campaigns in one run: no weekly outreach spread unless a test asks for it
    doc["limits"] = {"weekly_outreach": 1_000_000, **(overrides.pop("limits", None) or {})}
    # and every generated creator counts, however long ago the marketplace says it was active
    doc["lifecycle"] = {"inactive_after_days": 3650, **(overrides.pop("lifecycle", None) or {})}
    return apply_overrides(doc, overrides)


def apply_overrides(doc: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`doc` with each override set, or dropped where it is None (a field left out on purpose)."""
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def write_campaign(directory: Path, creators: int = 100, *, start: int = 0, name: str = "campaign.yaml",
                   creators_file: str = "creators.csv", **overrides) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    doc = campaign_dict(**overrides)
    doc["creators"] = {"file": creators_file}
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if not (directory / creators_file).exists():
        write_creators_file(str(directory / creators_file), creators, start=start)
    return path


def run_cli(*args, env=None, timeout=120, check=None):
    """Run trendio as a real subprocess; returns CompletedProcess with text output."""
    import os

    full_env = {k: v for k, v in os.environ.items()}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "trendio_cli", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def json_out(proc):
    return _json.loads(proc.stdout)


# --- several shops on one app (brand-specific credentials) -----------------------------------------
def shop_credentials(brands):
    """The sandbox's default credentials plus one shop (token, cipher) per brand, all on the same app."""
    from trendio_cli.api.credentials import Credentials, sandbox_accepted_credentials

    base = sandbox_accepted_credentials({})[0]
    return [base] + [Credentials(base.app_key, base.app_secret, f"token-{b}", f"cipher-{b}") for b in brands]


def shop_env(brands):
    """The TRENDIO_<BRAND>_* variables that select each brand's shop."""
    env = {}
    for b in brands:
        env[f"TRENDIO_{b.upper()}_ACCESS_TOKEN"] = f"token-{b}"
        env[f"TRENDIO_{b.upper()}_SHOP_CIPHER"] = f"cipher-{b}"
    return env


# A process that reserves quota as fast as it can until the limit refuses it; prints how many it got.
RESERVER = """
import sys
from trendio_cli.ledger import Ledger, QuotaExhausted
ledger = Ledger.open(sys.argv[1])
got = 0
while True:
    try:
        ledger.reserve_call(brand="b", quota_day="d", endpoint="e", limit=int(sys.argv[2]), run_id=None)
        got += 1
    except QuotaExhausted:
        break
print(got)
"""


def reserve_in_parallel(location, limit, processes=4):
    """Run `processes` reservers at full speed on one ledger; how many reservations each got."""
    procs = [subprocess.Popen([sys.executable, "-c", RESERVER, str(location), str(limit)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in results]
    return [int(out) for out, _ in results]


# --- a ledger with outcomes of every kind (matching) ----------------------------------------------
def ledger_with_outcomes(path) -> float:
    """A brand's invitations in every state, with times and orders; returns the time they are read at."""
    from trendio_cli.ledger import Ledger, iso, parse_iso

    now = parse_iso("2026-11-25T12:00:00.000000Z")
    with Ledger.open(path) as led:
        run = led.start_run(brand="b", campaign="c", command="test")
        led.insert_planned("b", "c", run, [(cid, p, "mid", f"k{cid}") for cid in ("a", "s", "t", "x", "o")
                                           for p in ("1", "2")])
        led.upsert_creators("b", [{"creator_id": "a", "category": "beauty", "followers": 5000, "gmv_30d": 100.0,
                                   "engagement_rate": 0.05, "last_active": "2026-11-20",
                                   "extra": {"units_sold": "55"}}])
        led.upsert_orders("b", [
            {"order_id": "o1", "sku": "1", "collaboration_id": "col-s", "creator_id": "s", "creator_username": "s",
             "product_id": "1", "status": "COMPLETED", "quantity": 1, "refunded": 0, "returned": 0,
             "currency": "USD", "gmv": 40.0, "actual_base": 40.0, "estimated_commission": 6.0,
             "actual_commission": 6.0, "content_type": "VIDEO", "created_at": "2026-11-23T00:00:00.000000Z"},
            {"order_id": "o2", "sku": "1", "collaboration_id": "col-s", "creator_id": "s", "creator_username": "s",
             "product_id": "2", "status": "COMPLETED", "quantity": 1, "refunded": 0, "returned": 0,
             "currency": "USD", "gmv": 10.0, "actual_base": 10.0, "estimated_commission": 1.5,
             "actual_commission": 1.5, "content_type": "VIDEO", "created_at": "2026-11-24T00:00:00.000000Z"}])
        day = 86400
        with led.transaction() as c:
            for cid, state, claimed, shown, posted in (
                    ("a", "sent", now - 2 * day, None, None),
                    ("s", "content", now - 5 * day, now - 4 * day, now - 2 * day),
                    ("t", "showcased", now - 3 * day, now - 2.5 * day, None),
                    ("x", "expired", now - 20 * day, None, None), ("o", "sent", now - 40 * day, None, None)):
                c.execute("UPDATE invitations SET state = ?, claimed_at = ?, showcased_at = ?, content_at = ?, "
                          "collaboration_id = ? WHERE brand = 'b' AND creator_id = ?",
                          (state, iso(claimed), shown and iso(shown), posted and iso(posted), f"col-{cid}", cid))
    return now
