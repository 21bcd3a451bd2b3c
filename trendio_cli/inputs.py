"""Loading what a command works from: a campaign file with its creators file, or a saved plan.

Everything that can be wrong with an input is found here, before a command plans, sends or writes."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from trendio_cli.campaign import (
    MAX_MESSAGE,
    Campaign,
    ParsedCampaign,
    check_path_text,
    parse_campaign_text,
    read_text,
)
from trendio_cli.creators import Creator, CreatorsFile, load_creators
from trendio_cli.errors import BadInput, ProblemsFound
from trendio_cli.planner import Plan
from trendio_cli.problems import Problem, errors_only

MAX_ROWS_REPORTED = 20  # rows of one kind named one by one; the rest are counted


@dataclass
class CampaignInputs:
    path: Path
    campaign: Campaign
    creators: list[Creator]
    warnings: list[Problem]


def _creators_file_named(parsed: ParsedCampaign) -> str | None:
    """The creators file a campaign file names, even when the rest of it has errors."""
    if parsed.campaign is not None:
        return parsed.campaign.creators.file
    source = parsed.data.get("creators") if isinstance(parsed.data, dict) else None
    name = source.get("file") if isinstance(source, dict) else None
    if not isinstance(name, str) or not name:
        return None
    try:
        return check_path_text(name)
    except ValueError:
        return None


def check_campaign(path: Path, now: datetime | None = None) -> tuple[Campaign | None, list[Problem],
                                                                       CreatorsFile | None]:
    """Every problem of a campaign file and of the creators file it names (warnings included),
    with the campaign and the creators when they could be read."""
    try:
        text = read_text(path, "campaign file")
    except ProblemsFound as exc:
        return None, [_problem_from_text(p) for p in exc.problems], None
    except BadInput as exc:
        return None, [Problem(str(path), 1, 1, exc.message.removeprefix(f"{path}: "))], None
    parsed = parse_campaign_text(text, str(path))
    problems = list(parsed.problems)  # the campaign file's own, in line order
    found: list[Problem] = []  # the creators file's
    cfile: CreatorsFile | None = None
    name = _creators_file_named(parsed)
    if name is not None:
        try:
            cfile = load_creators(_resolved(path.parent / name))
            found = cfile.problems
        except ProblemsFound as exc:
            found = [_problem_from_text(p) for p in exc.problems]
        except BadInput as exc:
            problems.append(Problem(str(path), *parsed.at("creators", "file"), f"creators.file: {exc.message}"))
    # the checks that need more than one field each run on the fields it reads, whatever else is wrong
    if (ended := parsed.draft(("end_date", "schedule"))) is not None:
        problems.extend(_ended(ended, parsed, now or datetime.now(timezone.utc)))
    if cfile is not None:
        if (fits := parsed.draft(("message", "tiers", "products", "brand", "campaign"))) is not None:
            problems.extend(_messages_fit(fits, parsed, cfile.creators))
        if (targeted := parsed.draft(("targeting",))) is not None:
            problems.extend(_categories_found(targeted, parsed, cfile.creators))
        if (legacy := parsed.draft(("api", "tiers"))) is not None:
            found = [*found, *legacy_ids_missing(legacy, cfile.creators, str(cfile.path))]
    problems.sort(key=lambda p: (p.line, p.col))
    return parsed.campaign, [*problems, *found], cfile


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: the read that follows says so
        return path


def _ended(campaign: Campaign, parsed: ParsedCampaign, now: datetime) -> list[Problem]:
    tz = campaign.schedule.timezone
    today = now.astimezone(ZoneInfo(tz)).date()
    if campaign.end_date >= today:
        return []
    return [Problem(parsed.file, *parsed.at("end_date"), f"end_date {campaign.end_date} is in the past (today "
                                                         f"is {today} in {tz}): set a later end_date")]


def _messages_fit(campaign: Campaign, parsed: ParsedCampaign, creators: list[Creator]) -> list[Problem]:
    """A message naming the creator must stay within the limit with the longest handle it will carry."""
    personal = [(i, t) for i, t in enumerate(campaign.tiers) if campaign.personal(t)]
    if not personal or not creators:
        return []
    longest = max(creators, key=lambda c: len(c.handle))
    out: list[Problem] = []
    for i, tier in personal:
        length = campaign.message_length(tier, max(len(longest.handle), len("there")))
        if length <= MAX_MESSAGE:
            continue
        own = bool(tier.message)
        at = parsed.at("tiers", i, "message") if own else parsed.at("message")
        field = f"tiers.{i}.message" if own else "message"
        out.append(Problem(parsed.file, *at, f"{field}: with the handle of creator {longest.creator_id} (line "
                                             f"{longest.line} of the creators file) it is {length} characters: "
                                             f"at most {MAX_MESSAGE}"))
        if not own:
            break  # the same message for every tier: once is enough
    return out


def _categories_found(campaign: Campaign, parsed: ParsedCampaign, creators: list[Creator]) -> list[Problem]:
    """Targeted categories no creator has would leave every creator out of every plan: say so, and why when
    the file has the marketplace's numeric category ids (as `creators discover` writes them) and the campaign
    names categories."""
    targeting = campaign.targeting
    if targeting is None or targeting.categories is None or not creators:
        return []
    if any(targeting.wants_category(c.category) for c in creators):
        return []
    common = [name for name, _ in Counter(c.category for c in creators if c.category).most_common(5)]
    found = f"most common in the file: {', '.join(common)}" if common else "the file gives none"
    message = (f"targeting.categories: no creator in the creators file has one of these categories, so no one is "
               f"invited ({found})")
    if common and all(name.isdigit() for name in common):
        message += ("; these are the marketplace's category ids, as `creators discover` writes them: list the "
                    "ids to target in categories")
    return [Problem(parsed.file, *parsed.at("targeting", "categories"), message, "warning")]


def legacy_ids_missing(campaign: Campaign, creators: Iterable[Creator], file: str) -> list[Problem]:
    """With `api: legacy-ids`, creates name creators by their plain id: every creator a plan could invite
    (one that matches a tier) needs a creator_user_id."""
    if not campaign.uses_legacy_ids:
        return []
    missing = [c for c in creators if not c.creator_user_id and campaign.tier_for(c.followers) is not None]
    out = [Problem(file, c.line, 1, f"creator {c.creator_id} has no creator_user_id: api: legacy-ids invites "
                                    f"creators by that plain id") for c in missing[:MAX_ROWS_REPORTED]]
    if len(missing) > MAX_ROWS_REPORTED:
        out.append(Problem(file, missing[MAX_ROWS_REPORTED].line, 1,
                           f"... and {len(missing) - MAX_ROWS_REPORTED} more creators without creator_user_id"))
    return out


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
        if not stat.S_ISREG(os.stat(path).st_mode):  # a pipe or a device is no plan, and must not block us
            return False
        with open(path, "rb") as fh:
            return fh.read(64).lstrip().startswith(b"{")
    except (OSError, ValueError):
        return False


def check_plan(path: Path, now: datetime | None = None) -> tuple[Plan | None, list[Problem]]:
    """Every problem of a saved plan: its own (see plan_file), its campaign's end, and its creators, who
    must all be in the campaign's creators file (with a creator_user_id where the campaign needs one)."""
    try:
        plan = Plan.load(path)
    except ProblemsFound as exc:
        return None, [_problem_from_text(p) for p in exc.problems]
    except BadInput as exc:
        return None, [_located(path, exc.message)]
    campaign = plan.campaign_model()
    file = str(path)
    problems: list[Problem] = []
    today = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(campaign.schedule.timezone)).date()
    if campaign.end_date < today:
        problems.append(Problem(file, 1, 1, f"campaign_spec.end_date: the campaign ended on {campaign.end_date} "
                                            f"(today is {today} in {campaign.schedule.timezone})"))
    creators_file = _plan_creators_file(path, plan, campaign)
    if isinstance(creators_file, str):
        problems.append(Problem(file, 1, 1, creators_file))
        return None, problems
    try:
        cfile = load_creators(creators_file)
    except (ProblemsFound, BadInput) as exc:
        why = "; ".join(exc.problems) if isinstance(exc, ProblemsFound) else exc.message
        problems.append(Problem(file, 1, 1, f"campaign_file: its creators file cannot be read ({why})"))
        return None, problems
    if cfile.errors:
        problems.append(Problem(file, 1, 1, f"campaign_file: its creators file {creators_file} has "
                                            f"{len(cfile.errors)} problem(s): run trendio validate on the campaign"))
        return None, problems
    known = {c.creator_id: c for c in cfile.creators}
    strangers: list[str] = []
    invited: list[Creator] = []
    for i, b in enumerate(plan.batches):
        for j, cid in enumerate(b.creator_ids):
            c = known.get(cid)
            if c is None:
                strangers.append(f"batches[{i}].creator_ids[{j}]: creator {cid} is not in {creators_file}")
            else:
                invited.append(c)
    problems.extend(Problem(file, 1, 1, s) for s in strangers[:MAX_ROWS_REPORTED])
    if len(strangers) > MAX_ROWS_REPORTED:
        problems.append(Problem(file, 1, 1, f"batches: ... and {len(strangers) - MAX_ROWS_REPORTED} more creators "
                                            f"not in {creators_file}"))
    if campaign.uses_legacy_ids:
        problems.extend(Problem(file, 1, 1, f"batches: creator {c.creator_id} has no creator_user_id in "
                                            f"{creators_file} (line {c.line}), which api: legacy-ids needs")
                        for c in [c for c in invited if not c.creator_user_id][:MAX_ROWS_REPORTED])
    return (plan if not problems else None), problems


def _plan_creators_file(path: Path, plan: Plan, campaign: Campaign) -> Path | str:
    """The creators file of the campaign a plan was made from; a message when it cannot be found. The plan
    names its campaign file as it was given, relative to where `plan` ran, or else next to the plan."""
    given = Path(plan.campaign_file)
    candidates = [given] if given.is_absolute() else [given, path.parent / given]
    for candidate in candidates:
        if candidate.is_file():
            return (candidate.parent / campaign.creators.file).resolve()
    return (f"campaign_file: {plan.campaign_file} is not found (here or next to the plan): the plan's creators "
            f"cannot be checked against its creators file; run trendio plan again")


def _located(path: Path, message: str) -> Problem:
    prefix = f"{path}:"
    if message.startswith(prefix):
        line, col, rest = (message[len(prefix):].split(":", 2) + ["", ""])[:3]
        if line.isdigit() and col.isdigit():
            return Problem(str(path), int(line), int(col), rest.strip())
        return Problem(str(path), 1, 1, message[len(prefix):].strip())
    return Problem(str(path), 1, 1, message)


def load_plan(path: Path) -> Plan:
    """A saved plan, or ProblemsFound listing every problem (nothing is sent or written before this)."""
    plan, problems = check_plan(path)
    if plan is None or errors_only(problems):
        raise ProblemsFound([str(p) for p in problems])
    return plan
