"""`trendio creators discover`: search the creator marketplace and write (or extend) a creators file.

Pages are fetched with the first answer's `search_key` sent back (without it, page 2 is ranked anew). Every
page is a request counted against the brand's day like any other, outside the reserve kept for syncs, and
never more than `--max-requests`; paging stops early when the marketplace gives back a page token already used
or several pages in a row without a creator. Creators already in the file are not written twice; its other
columns and rows are kept as they are."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trendio_cli.admission import Admission, RateRule
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import check_base_url, credentials_for, is_loopback_url
from trendio_cli.api.endpoints import CREATOR_PAGE_SIZES, DEFAULT_BASE_URL
from trendio_cli.campaign import Campaign, Discover, Limits
from trendio_cli.creators import load_creators
from trendio_cli.errors import BadInput
from trendio_cli.executor import ExecuteOptions, Executor, Stop
from trendio_cli.ledger import Ledger
from trendio_cli.matching import marketplace_number

COLUMNS = ("creator_id", "handle", "nickname", "followers", "gmv_30d", "category", "units_sold", "avg_video_views",
           "avg_live_viewers", "region")
EMPTY_PAGES_TO_STOP = 3  # pages in a row without a single creator before the search gives up on the rest


def discover_filters(campaign: Campaign | None, **given: Any) -> Discover:
    """The campaign's `discover:` section, with the flags given (not None) over it."""
    base = campaign.discover.model_dump(exclude_none=True) if campaign and campaign.discover else {}
    try:
        return Discover.model_validate({**base, **{k: v for k, v in given.items() if v not in (None, [])}})
    except ValueError as exc:
        raise BadInput(f"discover filters: {str(exc).splitlines()[-1].strip()}") from None


def search_body(filters: Discover) -> dict[str, Any]:
    """The marketplace search body for the filters (follower counts, GMV and units-sold ranges, keyword)."""
    body: dict[str, Any] = {}
    if filters.keyword:
        body["keyword"] = filters.keyword
    if filters.min_followers is not None or filters.max_followers is not None:
        count: dict[str, int] = {}
        if filters.min_followers is not None:
            count["count_ge"] = filters.min_followers
        if filters.max_followers is not None:
            count["count_le"] = filters.max_followers
        body["follower_demographics"] = {"count_range": count}
    if filters.gmv_ranges:
        body["gmv_ranges"] = list(filters.gmv_ranges)
    if filters.units_sold_ranges:
        body["units_sold_ranges"] = list(filters.units_sold_ranges)
    return body


def range_figure(band: Any) -> float | None:
    """A marketplace range ({minimum_amount, maximum_amount}, amounts as text, unit counts as numbers) as one
    figure: its middle, or its minimum when the band is open-ended. How the top bands ("10000+", "1000+") write
    their maximum is not documented ("", -1, null or left out are all seen), and taking the middle of those made
    the biggest creators look like the smallest. None without a minimum."""
    if not isinstance(band, dict):
        return None
    lo = marketplace_number(band.get("minimum_amount"))
    hi = marketplace_number(band.get("maximum_amount"))
    if lo is None:
        return None
    return lo if hi is None or hi < lo else (lo + hi) / 2


def gmv_figure(c: dict[str, Any]) -> float | None:
    """The creator's 30-day GMV: `gmv.amount`, or the middle of `gmv_range` when the creator does not share
    precise data (then `gmv` is omitted, and an empty or unreadable amount says no more than that)."""
    gmv = c.get("gmv")
    precise = marketplace_number(gmv.get("amount") if isinstance(gmv, dict) else gmv)
    return precise if precise is not None else range_figure(c.get("gmv_range"))


def _cell(figure: float | None) -> str:
    if figure is None:
        return ""
    return str(int(figure)) if figure.is_integer() else f"{figure:.2f}"


def creator_row(c: dict[str, Any]) -> dict[str, str] | None:
    """A marketplace creator as a creators-file row; None without an open id."""
    open_id = str(c.get("creator_open_id") or "")
    if not open_id:
        return None
    categories = c.get("category_ids") or []
    return {
        "creator_id": open_id, "handle": str(c.get("username") or ""), "nickname": str(c.get("nickname") or ""),
        "followers": _cell(marketplace_number(c.get("follower_count"))), "gmv_30d": _cell(gmv_figure(c)),
        "category": str(categories[0]) if isinstance(categories, list) and categories else "",
        "units_sold": _cell(range_figure(c.get("units_sold_range"))),
        "avg_video_views": _cell(marketplace_number(c.get("avg_ec_video_view_count"))),
        "avg_live_viewers": _cell(marketplace_number(c.get("avg_ec_live_uv"))),
        "region": str(c.get("selection_region") or ""),
    }


def discover(out: Path, *, brand: str, filters: Discover, ledger_path: str, base_url: str | None,
             limits: Limits | None = None, max_requests: int | None = None, page_size: int = 20,
             on_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    if page_size not in CREATOR_PAGE_SIZES:
        raise BadInput(f"--page-size must be one of {', '.join(map(str, CREATOR_PAGE_SIZES))}")
    if out.exists() and not out.is_file():
        raise BadInput(f"{out}: is not a file")
    existing = _existing(out)
    url = check_base_url(base_url or DEFAULT_BASE_URL)
    creds = credentials_for(brand, allow_sandbox_defaults=is_loopback_url(url))
    limits = limits or Limits()
    found: dict[str, dict[str, str]] = {}
    result = asyncio.run(_search(brand, creds, url, ledger_path, limits, filters, max_requests, page_size,
                                 existing, found, on_progress))
    added = [row for cid, row in found.items() if cid not in existing][:filters.limit]
    if added:
        _write(out, added)
    return {"file": str(out), "brand": brand, "added": len(added),
            "already_in_file": sum(1 for cid in found if cid in existing),
            "filters": search_body(filters), **result}


async def _search(brand: str, creds: Any, url: str, ledger_path: str, limits: Limits, filters: Discover,
                  max_requests: int | None, page_size: int, existing: set[str], found: dict[str, dict[str, str]],
                  on_progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    ledger = Ledger.open(ledger_path)
    run_id = ledger.start_run(brand=brand, campaign=None, command="creators discover")
    admission = Admission(RateRule.for_rate(limits.requests_per_second), ledger, app_key=creds.app_key,
                          shop_cipher=creds.shop_cipher, scope=limits.rate_scope)
    pages = 0
    try:
        async with ApiClient(url, creds) as client:
            ex = Executor(ledger, None, client, admission, run_id, ExecuteOptions(max_requests=max_requests),
                          brand_key=brand, limits=limits)
            body = search_body(filters)
            token: str | None = None
            used_tokens: set[str] = set()
            empty_in_a_row = 0
            paging_end: Stop | None = None
            while len([c for c in found if c not in existing]) < filters.limit:
                # a search spends the brand's share, never the reserve kept for syncs
                answer = await ex.read(client.prepare_search_creators(page_size=page_size, page_token=token,
                                                                      filters=body), purpose="invite",
                                       record_failure=True)
                if answer is None:
                    break
                pages += 1
                creators = answer.data.get("creators") or []
                for c in creators:
                    row = creator_row(c) if isinstance(c, dict) else None
                    if row is not None and row["creator_id"] not in found:
                        found[row["creator_id"]] = row
                if on_progress is not None:
                    on_progress(len([c for c in found if c not in existing]), filters.limit)
                if answer.data.get("search_key"):
                    body = {**body, "search_key": answer.data["search_key"]}  # later pages: the same ranking
                if token:
                    used_tokens.add(token)
                token = answer.data.get("next_page_token") or None
                empty_in_a_row = 0 if creators else empty_in_a_row + 1
                # a marketplace that loops or only gives empty pages would otherwise spend the budget on nothing
                paging_end = _paging_end(token, used_tokens, empty_in_a_row)
                if not token or paging_end:
                    break
        stop = ex.stop or paging_end
        # a quota or --max-requests stopping the search leaves creators to find (exit 4); the end of the
        # marketplace's pages, or of its useful ones, is done (0)
        exit_code = stop.exit_code if stop else (1 if ex.errors and not pages else 0)
        counts = {"pages": pages, "requests": ex.counts.requests}
        errors = list(ex.errors)
        if stop:
            errors.insert(0, {"stop": stop.reason, "message": stop.message, "hint": stop.hint})
        ledger.finish_run(run_id, status=stop.reason if stop else "success", exit_code=exit_code, counts=counts,
                          errors=errors)
        return {"exit_code": exit_code, **counts, "stop_reason": stop.reason if stop else None, "errors": errors}
    finally:
        ledger.close()


def _paging_end(token: str | None, used_tokens: set[str], empty_in_a_row: int) -> Stop | None:
    """Why the search stops paging though the marketplace gave a next page, or None to go on."""
    if token and token in used_tokens:
        return Stop("page_token_repeated", "the marketplace gave back a page token already used: its later pages "
                    "would repeat earlier ones", 0)
    if token and empty_in_a_row >= EMPTY_PAGES_TO_STOP:
        return Stop("empty_pages", f"{empty_in_a_row} pages in a row had no creators", 0)
    return None


def _existing(out: Path) -> set[str]:
    """The creators already in the file. One not there yet, empty or a header alone is where discovery starts:
    nothing is known yet. One with errors is not extended."""
    if not out.is_file():
        return set()
    file = load_creators(out)
    if file.holds_no_creators:
        return set()
    if file.errors:
        raise BadInput(f"{out}: cannot extend a creators file with errors (first: {file.errors[0]})",
                       hint="fix it (`trendio validate` on a campaign that names it shows every problem) or pick "
                            "another --out")
    return {c.creator_id for c in file.creators}


def _write(out: Path, rows: list[dict[str, str]]) -> None:
    """Append the new creators, atomically: the file is rewritten whole (its columns extended when needed),
    then renamed over the old one."""
    jsonl = out.suffix.lower() in (".jsonl", ".ndjson")
    old_text = out.read_text(encoding="utf-8-sig") if out.is_file() else ""
    buf = io.StringIO()
    if jsonl:
        buf.write(old_text if not old_text or old_text.endswith("\n") else old_text + "\n")
        for r in rows:
            buf.write(json.dumps({k: v for k, v in r.items() if v != ""}, ensure_ascii=False) + "\n")
    else:
        old_rows = list(csv.DictReader(io.StringIO(old_text))) if old_text else []
        header = list(csv.DictReader(io.StringIO(old_text)).fieldnames or []) if old_text else []
        header += [c for c in COLUMNS if c not in header]
        writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(old_rows)
        writer.writerows(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
