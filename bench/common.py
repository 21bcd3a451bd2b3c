"""Helpers shared by the benchmark scripts (not part of the test suite)."""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d")}


def write_creators_csv(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("creator_id,handle,followers,gmv_30d,category,engagement_rate,last_active\n")
        for i in range(n):
            fh.write(f"{7_000_000_000_000_000_000 + i},h{i},{int(rng.lognormvariate(9, 1.5))},"
                     f"{rng.random() * 1000:.2f},beauty,{rng.random() * 0.1:.4f},2026-11-{rng.randint(1, 24):02d}\n")


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command; wall time, CPU time and peak memory of that process alone (os.wait4: its own rusage, not
    the largest of every child so far, the sandbox included)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    out: dict[str, str] = {}
    # the pipes are read in threads, so that the process is reaped here, with its rusage
    readers = [threading.Thread(target=lambda s=stream, k=key: out.__setitem__(k, s.read()))
               for stream, key in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for reader in readers:
        reader.join()
    return {
        "returncode": os.waitstatus_to_exitcode(status), "wall_s": round(time.perf_counter() - started, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stdout": out.get("stdout", ""), "stderr": out.get("stderr", ""),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2))
    return path


def trendio(*args: str) -> list[str]:
    return [sys.executable, "-m", "trendio_cli", *args]
