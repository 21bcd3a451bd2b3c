"""Benchmark 2: client overhead. CPU seconds spent by the `trendio execute` process per request (target <= 2 ms)
and its peak memory over a 10,000-request run (target <= 150 MB), against the sandbox in its own process.
Start-up (imports, loading and planning the creators) is included, and also given apart (a run with one
request) so that the per-request figure can be read both ways. For scale, the floor of the stack: the same
requests signed and sent through trendio's ApiClient (one httpx.AsyncClient) at 50 a second, in a process
of their own, with no ledger, no admission and no executor.

    python bench/overhead.py [--requests 10000] [--latency-ms 50] [--runs 1] [--floor-requests 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_measured, save, trendio  # noqa: E402
from pacing import Sandbox, write_campaign  # noqa: E402


def measure(d: Path, requests: int, latency: int, name: str) -> dict:
    campaign = write_campaign(d / name, requests)
    sb = Sandbox(latency, d / f"{name}.jsonl")
    try:
        m = run_measured(trendio("execute", str(campaign), "--yes", "--json"),
                         env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(d / f"{name}.db")})
        stats = sb.stats()
    finally:
        sb.stop()
    if m["returncode"] not in (0, 4):  # (4: the day's 10,000 were spent, a retried request among them)
        raise SystemExit(f"execute exited {m['returncode']}: {m['stdout'][-1500:]} {m['stderr'][-1500:]}")
    return {**m, "requests": stats["requests"], "http_429": stats["http_429"],
            "late": json.loads(m["stdout"])["pace"]["late"]}


FLOOR = """
import asyncio, resource, sys
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import credentials_for
from trendio_cli.sandbox.marketplace import open_id

async def main(url, n):
    async with ApiClient(url, credentials_for(None, {}, allow_sandbox_defaults=True), max_connections=72) as client:
        prepared = client.prepare_create(name="floor", message="Hi", end_time=4_000_000_000, products=[("1", 1000)],
                                         creator_ids=[open_id(8000000)], contact_email="floor@bench.example",
                                         free_sample=False)
        loop = asyncio.get_running_loop()
        start, tasks = loop.time(), []
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / 50 - loop.time()))
            tasks.append(asyncio.create_task(client.send(prepared)))
        await asyncio.gather(*tasks)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def floor(d: Path, requests: int, latency: int) -> float:
    """CPU ms per request of ApiClient.send alone, at 50 a second (start-up subtracted: a run of one)."""
    sb = Sandbox(latency, d / "floor.jsonl")
    try:
        one = run_measured([sys.executable, "-c", FLOOR, sb.url, "1"])
        many = run_measured([sys.executable, "-c", FLOOR, sb.url, str(requests)])
    finally:
        sb.stop()
    return (many["cpu_s"] - one["cpu_s"]) / max(1, requests - 1) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--floor-requests", type=int, default=2000, help="0: no floor measurement")
    args = ap.parse_args()
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        start = measure(d, 1, args.latency_ms, "startup")
        for run in range(args.runs):
            m = measure(d, args.requests, args.latency_ms, f"run{run}")
            per_request_ms = m["cpu_s"] / m["requests"] * 1000
            without_startup_ms = (m["cpu_s"] - start["cpu_s"]) / m["requests"] * 1000
            row = {"run": run + 1, "requests": m["requests"], "cpu_s": m["cpu_s"],
                   "cpu_ms_per_request": round(per_request_ms, 3),
                   "cpu_ms_per_request_without_startup": round(without_startup_ms, 3),
                   "peak_rss_mb": m["peak_rss_mb"], "wall_s": m["wall_s"], "http_429": m["http_429"]}
            rows.append(row)
            ok &= per_request_ms <= 2.0 and m["peak_rss_mb"] <= 150
            print(f"run {run + 1}: {m['requests']} requests ({m['http_429']} 429s), {m['cpu_s']:.2f} CPU s "
                  f"({per_request_ms:.3f} ms per "
                  f"request, {without_startup_ms:.3f} without the {start['cpu_s']:.2f} s of start-up), peak "
                  f"{m['peak_rss_mb']:.1f} MB, {m['wall_s']:.1f} s wall", flush=True)
        floor_ms = floor(d, args.floor_requests, args.latency_ms) if args.floor_requests else None
        if floor_ms is not None:
            print(f"floor: ApiClient.send alone at 50/s, {floor_ms:.3f} CPU ms per request")
    save("overhead", {"startup_cpu_s": start["cpu_s"], "rows": rows, "httpx_floor_cpu_ms_per_request": floor_ms,
                      "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
