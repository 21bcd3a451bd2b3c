"""`trendio validate`: every problem of campaign files (and their creators files) and of plan files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trendio_cli.inputs import check_campaign, check_plan, is_plan_file


def validate_files(paths: list[Path]) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    for path in paths:
        if path.is_file() and is_plan_file(path):
            _, problems = check_plan(path)
            kind = "plan"
        else:
            _, problems, _ = check_campaign(path)
            kind = "campaign"
        errors = [p for p in problems if p.severity == "error"]
        files.append({"file": str(path), "kind": kind, "ok": not errors,
                      "problems": [p.as_dict() for p in problems], "rendered": [str(p) for p in problems]})
    error_count = sum(1 for f in files for p in f["problems"] if p["severity"] == "error")
    return {"files": files, "errors": error_count,
            "warnings": sum(1 for f in files for p in f["problems"] if p["severity"] == "warning")}
