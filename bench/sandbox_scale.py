"""How the sandbox holds up under a matching simulation: weeks of simulated time, thousands of creators, a
daily sync that pages every live collaboration, reads the details whose counts changed and every new order.
Reports the time per request by endpoint (the sandbox's work plus loopback HTTP) and the orders drawn.

    python bench/sandbox_scale.py [--days 28] [--per-day 200] [--creators 6000] [--products 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from trendio_cli.api.signing import sign  # noqa: E402
from trendio_cli.sandbox.marketplace import open_id  # noqa: E402
from trendio_cli.sandbox.server import SandboxServer  # noqa: E402
from trendio_cli.sandbox.state import SandboxSettings  # noqa: E402

APP, SECRET, TOKEN, CIPHER = "sandbox-app-key", "sandbox-app-secret", "sandbox-access-token", "sandbox-shop-cipher"


class Caller:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.seconds: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def call(self, label: str, method: str, path: str, body: dict | None = None, **query: str) -> dict:
        q = {"app_key": APP, "timestamp": str(int(time.time())), "shop_cipher": CIPHER, **query}
        raw = json.dumps(body).encode() if body is not None else b""
        q["sign"] = sign(SECRET, path, q, raw)
        started = time.perf_counter()
        r = self.http.request(method, path, params=q, content=raw,
                              headers={"x-tts-access-token": TOKEN, "content-type": "application/json"})
        self.seconds[label] += time.perf_counter() - started
        self.count[label] += 1
        doc = r.json()
        assert doc["code"] == 0, doc
        return doc["data"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--per-day", type=int, default=200)
    ap.add_argument("--creators", type=int, default=6000)
    ap.add_argument("--products", type=int, default=2)
    args = ap.parse_args()
    settings = SandboxSettings(marketplace_size=args.creators, token_lifetime_s=0, daily_quota=10**9,
                               weekly_outreach=10**9, rate_limit=10**6)
    offer = [{"id": str(1729384756 + i), "target_commission_rate": 1500} for i in range(args.products)]
    started = time.perf_counter()
    with SandboxServer(settings) as sb:
        api = Caller(sb.url)
        seen: dict[str, tuple[int, int]] = {}
        next_creator, since = 0, 0
        for day in range(args.days):
            for start in range(0, args.per_day, 50):
                ids = [open_id((next_creator + i) % args.creators) for i in range(min(50, args.per_day - start))]
                next_creator += len(ids)
                api.call("create", "POST", "/affiliate_seller/202508/target_collaborations", {
                    "name": f"bench-d{day}-{start}", "end_time": str(int(sb.state.now()) + 60 * 86400),
                    "products": offer, "creator_user_open_ids": ids,
                    "seller_contact_info": {"email": "bench@brand.example"},
                    "free_sample_rule": {"has_free_sample": False, "is_sample_approval_exempt": False}})
            sb.advance(days=1)
            token = ""
            while True:  # the daily sync: every live collaboration's counts ...
                page = api.call("search", "POST", "/affiliate_seller/202508/target_collaborations/search",
                                {"collaboration_status": "VALID"}, page_size="100",
                                **({"page_token": token} if token else {}))
                for c in page["target_collaborations"]:
                    counts = (c["showcase_creator_count"], c["content_creator_count"])
                    if seen.get(c["id"], (0, 0)) != counts:  # ... the details of those that changed ...
                        api.call("detail", "GET", f"/affiliate_seller/202508/target_collaborations/{c['id']}")
                        seen[c["id"]] = counts
                token = page["next_page_token"]
                if not token:
                    break
            now = int(sb.state.now())
            token = ""
            while True:  # ... and the orders since the last sync
                page = api.call("orders", "POST", "/affiliate_seller/202410/orders/search",
                                {"create_time_ge": since, "create_time_lt": now}, page_size="100",
                                **({"page_token": token} if token else {}))
                token = page["next_page_token"]
                if not token:
                    break
            since = now
        stats = sb.stats()
    wall = time.perf_counter() - started
    per_endpoint = {k: {"requests": api.count[k], "ms_per_request": round(1000 * api.seconds[k] / api.count[k], 2)}
                    for k in api.count}
    result = {"args": vars(args), "machine": machine(), "wall_s": round(wall, 1), "requests": stats["requests"],
              "invited_pairs": stats["invited_pairs"], "collaborations": stats["collaborations"],
              "orders": stats["orders"], "by_endpoint": per_endpoint}
    save("sandbox_scale", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
