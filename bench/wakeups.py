"""Why benchmark 2 is about wake-ups: what waking the process costs on this machine, and how many times
`trendio execute` blocks and wakes per request (figures only, no target).

    python bench/wakeups.py [--requests 500]

1. The CPU cost of one wake-up: an asyncio loop sleeping 20 ms at a time, `time.sleep` of 20 ms and 2 ms,
   and the same small piece of work run hot and right after a 20 ms sleep (cold caches).
2. `execute` in this process against the sandbox (its own process, 50 ms latency), counting the event
   loop's blocking waits by what ended them: a timer (a group's slot) or answers arriving on sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import selectors
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save  # noqa: E402
from pacing import CAMPAIGN, Sandbox  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_call_us(fn, n: int) -> float:
    started = cpu()
    for _ in range(n):
        fn()
    return (cpu() - started) / n * 1e6


def work() -> int:
    x = 0
    for i in range(6000):
        x += i
    return x


async def asyncio_sleeps(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0.02)


def floor() -> dict[str, float]:
    started = cpu()
    asyncio.run(asyncio_sleeps(300))
    figures = {"asyncio_sleep_20ms_us": (cpu() - started) / 300 * 1e6,
               "time_sleep_20ms_us": per_call_us(lambda: time.sleep(0.02), 300),
               "time_sleep_2ms_us": per_call_us(lambda: time.sleep(0.002), 1000),
               "work_hot_us": per_call_us(work, 2000)}
    figures["work_after_20ms_sleep_us"] = per_call_us(lambda: (time.sleep(0.02), work()), 300) - \
        figures["time_sleep_20ms_us"]
    return {k: round(v, 1) for k, v in figures.items()}


def execute_wakeups(requests: int) -> dict[str, float]:
    from trendio_cli.commands.execute import execute

    counts: collections.Counter[str] = collections.Counter()
    select = selectors.EpollSelector.select

    def counting_select(self, timeout=None):
        ready = select(self, timeout)
        if timeout == 0:
            counts["zero-timeout polls"] += 1
        elif ready:
            counts["woken by sockets"] += 1
        else:
            counts["woken by a timer"] += 1
        return ready

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "campaign.yaml").write_text(CAMPAIGN)
        with open(d / "creators.csv", "w") as fh:
            fh.write("creator_id,followers\n" + "".join(f"{7_000_000 + i},100\n" for i in range(requests)))
        sb = Sandbox(50, d / "sandbox.jsonl")
        selectors.EpollSelector.select = counting_select  # type: ignore[method-assign]
        try:
            result = execute(d / "campaign.yaml", ledger_path=str(d / "l.db"), base_url=sb.url)
        finally:
            selectors.EpollSelector.select = select  # type: ignore[method-assign]
            sb.stop()
    n = result["counts"]["requests"]
    return {k: round(v / n, 2) for k, v in sorted(counts.items())} | {"requests": n}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    f = floor()
    print("CPU per wake-up on this machine:")
    for k, v in f.items():
        print(f"  {k:28s} {v:8.1f} us")
    w = execute_wakeups(args.requests)
    print(f"execute, {w['requests']} requests at 50 ms latency, event-loop waits per request:")
    for k, v in w.items():
        if k != "requests":
            print(f"  {k:28s} {v:8.2f}")
    save("wakeups", {"floor": f, "execute_per_request": w})
    return 0


if __name__ == "__main__":
    sys.exit(main())
