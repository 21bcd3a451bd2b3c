"""Benchmark 1: pacing. `trendio execute` against the sandbox (its own process) at 50, 200 and 500 ms
latency; figure: achieved requests per second / the 50 rps limit (target >= 0.97) with zero 429s. In the
same run, the same work done the way a user would otherwise write it: a plain sequential httpx loop, and
a loop that fires a request every 1/50 s (fixed sleep).

    python bench/pacing.py [--requests 1000] [--latencies 50,200,500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_measured, save, trendio  # noqa: E402

from trendio_cli.api.client import ApiClient  # noqa: E402
from trendio_cli.api.credentials import credentials_for  # noqa: E402

CAMPAIGN = """\
campaign: pacing
brand: pacebrand
products: [{id: "1", commission: 10%}]
message: "Hi from {brand}"
end_date: 2099-12-31
contact_email: partners@bench.example
creators: {file: creators.csv}
tiers: [{name: all, min_followers: 0}]
schedule: {timezone: UTC, days: [mon, tue, wed, thu, fri, sat, sun], daily_target: 1000000}
limits: {creators_per_request: 1, reserve_requests: 0, weekly_outreach: 1000000}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    def __init__(self, latency: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(trendio("sandbox", "--port", str(self.port), "--latency-ms", str(latency),
                                             "--ineligible-permille", "0", "--weekly-outreach", "1000000",
                                             "--log", str(log)),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                httpx.get(self.url + "/_sandbox/stats", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("sandbox did not start")

    def stats(self) -> dict:
        return httpx.get(self.url + "/_sandbox/stats", timeout=10).json()

    def reset(self) -> None:
        httpx.post(self.url + "/_sandbox/reset", timeout=10)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def steady_rate(log: Path, since: float) -> float:
    """Requests per second from the first arrival to the last (process start-up excluded). Arrivals less
    than 5 ms apart form one burst (trendio sends groups of 10 at once): the last burst's requests are not
    counted, since the time they stand for lies after the last arrival."""
    times = sorted(t for t in (json.loads(line)["t"] for line in log.read_text().splitlines()) if t >= since)
    if len(times) < 2:
        return 0.0
    last_burst = len(times) - 1
    while last_burst > 0 and times[last_burst] - times[last_burst - 1] < 0.005:
        last_burst -= 1
    return last_burst / (times[last_burst] - times[0]) if last_burst else 0.0


def check_body(client: ApiClient, i: int):
    return client.prepare_create(name="pacing", message="Hi", end_time=4_000_000_000, products=[("1", 1000)],
                                 creator_ids=[str(8_000_000 + i)], contact_email=None, free_sample=False)


def plain_httpx_client(url: str) -> ApiClient:
    """The baselines send through plain httpx, as a script of one's own would (not trendio's HTTP client)."""
    return ApiClient(url, credentials_for(None, {}, allow_sandbox_defaults=True), transport=httpx.AsyncHTTPTransport())


async def sequential(url: str, n: int) -> None:
    async with plain_httpx_client(url) as client:
        for i in range(n):
            await client.send(check_body(client, i))


async def fixed_sleep(url: str, n: int) -> None:
    async with plain_httpx_client(url) as client:
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(client.send(check_body(client, 10**6 + i))))
            await asyncio.sleep(1 / 50)
        await asyncio.gather(*tasks)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--latencies", default="50,200,500")
    ap.add_argument("--baseline-seconds", type=float, default=20.0, help="how long each baseline runs")
    args = ap.parse_args()
    rows = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "campaign.yaml").write_text(CAMPAIGN)
        with open(d / "creators.csv", "w") as fh:
            fh.write("creator_id,followers\n" + "".join(f"{7_000_000 + i},100\n" for i in range(args.requests)))
        for latency in [int(x) for x in args.latencies.split(",")]:
            log = d / f"sandbox-{latency}.jsonl"
            sb = Sandbox(latency, log)
            try:
                ledger = d / f"l{latency}.db"
                start = time.time()
                m = run_measured(trendio("execute", str(d / "campaign.yaml"), "--yes", "--json"),
                                 env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)})
                if m["returncode"] != 0:
                    print(m["stderr"][-2000:], file=sys.stderr)
                    return 1
                stats = sb.stats()
                rate = steady_rate(log, start)
                row = {"latency_ms": latency, "tool": "trendio execute", "requests": stats["requests"],
                       "rps": round(rate, 2), "ratio": round(rate / 50, 3), "http_429": stats["http_429"],
                       "max_in_any_second": stats["max_requests_in_window"], "wall_s": m["wall_s"]}
                rows.append(row)
                ok &= row["ratio"] >= 0.97 and row["http_429"] == 0
                # baselines, each for a bounded number of requests
                for name, fn, n in (("sequential httpx loop", sequential, int(args.baseline_seconds * 1000 / latency)),
                                    ("fixed-sleep loop (1/50 s)", fixed_sleep, int(args.baseline_seconds * 50))):
                    sb.reset()
                    log.write_text("")
                    start = time.time()
                    asyncio.run(fn(sb.url, n))
                    stats = sb.stats()
                    rate = steady_rate(log, start)
                    rows.append({"latency_ms": latency, "tool": name, "requests": stats["requests"],
                                 "rps": round(rate, 2), "ratio": round(rate / 50, 3), "http_429": stats["http_429"],
                                 "max_in_any_second": stats["max_requests_in_window"]})
            finally:
                sb.stop()
            for r in rows[-3:]:
                print(f"{r['latency_ms']:>4} ms  {r['tool']:<26} {r['requests']:>6} req  {r['rps']:6.2f} req/s  "
                      f"ratio {r['ratio']:.3f}  429s {r['http_429']:>4}  max/s {r['max_in_any_second']}", flush=True)
    save("pacing", {"rows": rows, "targets_met": ok})
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
