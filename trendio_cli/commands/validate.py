"""`trendio validate`: every problem of campaign files (and their creators files) and of plan files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trendio_cli.errors import BadInput, ProblemsFound
from trendio_cli.inputs import check_campaign, is_plan_file, load_plan
from trendio_cli.problems import Problem


def validate_files(paths: list[Path]) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    for path in paths:
        if path.is_file() and is_plan_file(path):
            problems = _check_plan(path)
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


def _check_plan(path: Path) -> list[Problem]:
    try:
        load_plan(path)
    except ProblemsFound as exc:
        return [Problem(str(path), 1, 1, p) for p in exc.problems]
    except BadInput as exc:
        text = exc.message
        prefix = f"{path}:"
        if text.startswith(prefix):
            rest = text[len(prefix):]
            line, col, msg = (rest.split(":", 2) + ["", ""])[:3]
            if line.isdigit() and col.isdigit():
                return [Problem(str(path), int(line), int(col), msg.strip())]
        return [Problem(str(path), 1, 1, text)]
    return []
