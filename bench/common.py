"""Helpers shared by the benchmark scripts (not part of the test suite)."""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import subprocess
import sys
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
    """Run a command; wall time, CPU time and peak memory of the child (from rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "returncode": proc.returncode, "wall_s": round(wall, 3),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),  # the largest child so far: run each in a fresh process
        "stdout": proc.stdout, "stderr": proc.stderr,
    }


def save(name: str, result: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2))
    return path


def trendio(*args: str) -> list[str]:
    return [sys.executable, "-m", "trendio_cli", *args]
