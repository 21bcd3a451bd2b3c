"""`trendio demo`: the whole flow on a bundled campaign, against an in-process sandbox, in a throwaway ledger."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from trendio_cli.commands.dryrun import dry_run
from trendio_cli.commands.execute import execute
from trendio_cli.commands.plan import plan_campaign
from trendio_cli.commands.status import ledger_status
from trendio_cli.commands.validate import validate_files
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings

DEMO_FILES = ("campaign.yaml", "creators.csv")


def run_demo(
    *,
    step: Callable[[str, str], None],
    show: Callable[[str, dict[str, Any]], None],
    on_progress: Callable[..., None] | None = None,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Run validate, plan, dry-run, execute and status; `step(title, explanation)` and `show(kind, result)`
    let the caller print each stage."""
    workdir = Path(tempfile.mkdtemp(prefix="trendio-demo-")) if keep is None else keep
    workdir.mkdir(parents=True, exist_ok=True)
    bundled = resources.files("trendio_cli") / "data" / "demo"
    for name in DEMO_FILES:
        (workdir / name).write_bytes((bundled / name).read_bytes())
    campaign = workdir / "campaign.yaml"
    ledger = str(workdir / "trendio.db")
    # A realistic sandbox: some latency, a few ineligible creators, rare faults and lost answers.
    settings = SandboxSettings(latency_ms=40, jitter_ms=20, ineligible_permille=15, fault_rate=0.02,
                               lost_rate=0.02, seed=11)
    results: dict[str, Any] = {"workdir": str(workdir), "sandbox_settings": {
        "fault_rate": settings.fault_rate, "lost_rate": settings.lost_rate, "latency_ms": settings.latency_ms,
        "jitter_ms": settings.jitter_ms, "ineligible_permille": settings.ineligible_permille,
        "rate_limit": settings.rate_limit, "rate_scope": settings.rate_scope}}
    try:
        with SandboxServer(settings) as sandbox:
            results["sandbox"] = sandbox.url
            step("1/5 validate", f"check {campaign.name} and its creators file")
            results["validate"] = validate_files([campaign])
            show("validate", results["validate"])

            step("2/5 plan", "who gets invited today, in which requests, at what cost; changes nothing")
            plan, _ = plan_campaign(campaign, ledger)
            results["plan"] = plan.summary()
            show("plan", results["plan"])

            step("3/5 dry-run", "every request built and signed as execute would, paced on a simulated clock")
            results["dry_run"] = dry_run(campaign, ledger, sandbox.url, include_requests=False)
            show("dry-run", results["dry_run"])

            step("4/5 execute", f"send them to the sandbox at {sandbox.url}, which fails {settings.fault_rate:.0%} "
                                f"of requests and cuts off {settings.lost_rate:.0%} of the answers to creates "
                                f"on purpose")
            results["execute"] = execute(campaign, ledger_path=ledger, base_url=sandbox.url,
                                         on_progress=on_progress)
            show("execute", results["execute"])

            step("5/5 status", "what the ledger now holds")
            results["status"] = ledger_status(ledger)
            show("status", results["status"])
            stats = sandbox.stats()
            results["sandbox_stats"] = {k: stats[k] for k in (
                "requests", "http_429", "max_requests_in_window", "invited_pairs", "duplicate_attempts",
                "lost_responses", "faults")}
            # execute's "at most N in one second" counts every request of the shop; the sandbox's limit
            # counts per rate scope (per API by default), so the demo shows both, each named
            results["sandbox_stats"]["max_shop_requests_in_window"] = stats["max_window_by_level"]["shop"]
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return results
