"""Loading what a command works from: a campaign file with its creators file, or a saved plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trendio_cli.campaign import Campaign, creators_path, find_line, parse_campaign, read_text
from trendio_cli.creators import Creator, CreatorsFile, load_creators
from trendio_cli.errors import BadInput, ProblemsFound
from trendio_cli.planner import Plan
from trendio_cli.problems import Problem, errors_only


@dataclass
class CampaignInputs:
    path: Path
    campaign: Campaign
    creators: list[Creator]
    warnings: list[Problem]


def check_campaign(path: Path) -> tuple[Campaign | None, list[Problem], CreatorsFile | None]:
    """Every problem of a campaign file and of the creators file it names (warnings included),
    with the campaign and the creators when they could be read."""
    try:
        text = read_text(path, "campaign file")
    except ProblemsFound as exc:
        return None, [_problem_from_text(p) for p in exc.problems], None
    except BadInput as exc:
        return None, [Problem(str(path), 1, 1, exc.message.removeprefix(f"{path}: "))], None
    campaign, problems = parse_campaign(text, str(path))
    if campaign is None:
        return None, problems, None
    cpath = creators_path(campaign, path)
    try:
        cfile = load_creators(cpath)
    except ProblemsFound as exc:
        return campaign, [*problems, *(_problem_from_text(p) for p in exc.problems)], None
    except BadInput as exc:
        line, col = find_line(text, "creators")
        return campaign, [*problems, Problem(str(path), line, col, f"creators.file: {exc.message}")], None
    return campaign, [*problems, *cfile.problems], cfile


def _problem_from_text(text: str) -> Problem:
    file, line, col, message = (text.split(":", 3) + ["", "", ""])[:4]
    try:
        return Problem(file, int(line), int(col), message.strip())
    except ValueError:
        return Problem(text, 1, 1, "")


def load_campaign_inputs(path: Path) -> CampaignInputs:
    """A campaign and its creators, or ProblemsFound listing every error (nothing is written before this)."""
    campaign, problems, cfile = check_campaign(path)
    errors = errors_only(problems)
    if campaign is None or cfile is None or errors:
        raise ProblemsFound([str(p) for p in errors or problems])
    return CampaignInputs(path, campaign, cfile.creators, [p for p in problems if p.severity == "warning"])


def is_plan_file(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def load_plan(path: Path) -> Plan:
    plan = Plan.load(path)
    try:
        plan.campaign_model()
    except ValueError as exc:
        raise BadInput(f"{path}:1:1: the plan's campaign is not valid: {exc}") from None
    return plan
