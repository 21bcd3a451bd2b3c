"""Benchmark 2: client overhead. CPU seconds spent by `trendio execute` per 1,000 requests (target <= 0.5 s)
and its peak memory over a 10,000-request run (target <= 150 MB), against the sandbox in its own process.

    python bench/overhead.py [--requests 10000] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_measured, save, trendio  # noqa: E402
from pacing import CAMPAIGN, Sandbox  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--latency-ms", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "campaign.yaml").write_text(CAMPAIGN)
        with open(d / "creators.csv", "w") as fh:
            fh.write("creator_id,followers\n" + "".join(f"{7_000_000 + i},100\n" for i in range(args.requests)))
        sb = Sandbox(args.latency_ms, d / "sandbox.jsonl")
        try:
            m = run_measured(trendio("execute", str(d / "campaign.yaml"), "--yes", "--json"),
                             env={"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(d / "l.db")})
            stats = sb.stats()
        finally:
            sb.stop()
    if m["returncode"] != 0:
        print(f"execute exited {m['returncode']}", m["stdout"][-1500:], m["stderr"][-1500:], file=sys.stderr)
        return 1
    per_1000 = m["cpu_s"] / stats["requests"] * 1000
    ok = per_1000 <= 0.5 and m["peak_rss_mb"] <= 150
    result = {"requests": stats["requests"], "cpu_s": m["cpu_s"], "cpu_s_per_1000_requests": round(per_1000, 3),
              "peak_rss_mb": m["peak_rss_mb"], "wall_s": m["wall_s"], "http_429": stats["http_429"],
              "targets_met": ok}
    save("overhead", result)
    print(f"{stats['requests']} requests: {m['cpu_s']:.2f} CPU s ({per_1000:.3f} per 1,000 requests), "
          f"peak {m['peak_rss_mb']:.1f} MB, {m['wall_s']:.1f} s wall")
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
