"""trendio creators discover over real HTTP against the sandbox's marketplace: pages with the first answer's
search_key, writes a creators file validate accepts, extends it without duplicates, stays within its request
budget and outside the reserve, stops paging on a repeated page token or on empty pages, and reads the open
top GMV and units-sold bands as their minimum; starts a campaign's creators file (missing, empty or a header
alone) that `plan` then invites from, by the marketplace's category ids and whatever the unknown last activity;
exits 4 when --max-requests leaves creators to find; and the saved-plan flow keeps creator attributes in the
ledger too."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from helpers import campaign_dict, json_out, run_cli, write_campaign
from trendio_cli.commands.discover import creator_row
from trendio_cli.creators import load_creators
from trendio_cli.sandbox.marketplace import CATEGORY_IDS
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import SandboxSettings


def env_for(sb, ledger):
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger)}


def test_discover_writes_a_valid_creators_file_within_its_budget_and_extends_it_without_duplicates(tmp_path: Path):
    out = tmp_path / "found.csv"
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, marketplace_size=2000)) as sb:
        env = env_for(sb, ledger)
        first = json_out(run_cli("creators", "discover", "--brand", "glowlab", "--out", out, "--min-followers",
                                 "5000", "--limit", "50", "--max-requests", "2", "--json", env=env, check=4))
        assert first["requests"] == 2 and first["pages"] == 2 and first["added"] == 40  # 2 pages of 20
        assert first["stop_reason"] == "max_requests"  # 10 more to find: work for a later run
        file = load_creators(out)
        assert not file.errors and len(file.creators) == 40
        assert all(c.followers >= 5000 and len(c.creator_id) > 30 for c in file.creators)
        again = json_out(run_cli("creators", "discover", "--brand", "glowlab", "--out", out, "--min-followers",
                                 "5000", "--limit", "30", "--json", env=env, check=0))
        searches = sb.stats()["by_endpoint"]["search_creators"]
    rows = list(csv.DictReader(out.open()))
    ids = [r["creator_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 40 + again["added"] and again["added"] == 30
    assert searches == first["requests"] + again["requests"]  # nothing more than it reports
    conn = sqlite3.connect(ledger)
    assert conn.execute("SELECT COUNT(*) FROM api_calls WHERE endpoint = 'search_creators'").fetchone()[0] == searches


def test_discover_pages_with_the_first_answers_search_key(tmp_path: Path):
    out = tmp_path / "found.jsonl"
    with SandboxServer(SandboxSettings(ineligible_permille=0, marketplace_size=500),
                       log_path=str(tmp_path / "log.jsonl")) as sb:
        doc = json_out(run_cli("creators", "discover", "--brand", "b", "--out", out, "--keyword", "a",
                               "--limit", "36", "--page-size", "12", "--json", env=env_for(sb, tmp_path / "l.db"),
                               check=0))
    assert doc["pages"] == 3 and doc["added"] == 36
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len({x["creator_id"] for x in lines}) == 36  # later pages were the same ranking, not a new one


def test_discover_never_spends_the_reserve(tmp_path: Path):
    campaign = write_campaign(tmp_path, 10, limits={"daily_requests": 20, "reserve_requests": 18})
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        proc = run_cli("creators", "discover", "--campaign", campaign, "--out", tmp_path / "more.csv", "--limit",
                       "500", "--json", env=env_for(sb, tmp_path / "l.db"))
    doc = json_out(proc)
    assert proc.returncode == 4 and doc["requests"] == 2  # 20 a day, 18 kept for syncs
    assert doc["stop_reason"] == "daily_quota"


def test_max_requests_leaves_work_for_a_later_run_and_the_last_page_is_done(tmp_path: Path):
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, tmp_path / "l.db")
        stopped = run_cli("creators", "discover", "--brand", "b", "--out", tmp_path / "f.csv", "--limit", "100",
                          "--max-requests", "2", env=env)
        sb.script("search_creators", [{"data": {"creators": [marketplace_creator("c1")], "next_page_token": ""}}])
        done = json_out(run_cli("creators", "discover", "--brand", "b", "--out", tmp_path / "g.csv", "--limit",
                                "100", "--max-requests", "2", "--json", env=env))
    assert stopped.returncode == 4 and "40 creator(s) added" in stopped.stdout
    assert "stopped: max_requests" in stopped.stdout
    assert done["exit_code"] == 0 and done["stop_reason"] is None and done["added"] == 1


def discovery_campaign(directory: Path, creators_file: str, **targeting) -> Path:
    """A campaign whose creators file is for `creators discover` to write; every creator it could invite
    counts, however long ago it was active, unless its targeting says otherwise."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = campaign_dict(targeting=targeting or None)
    doc["creators"] = {"file": creators_file}
    path = directory / "campaign.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("start", ["missing", "empty", "header only"])
def test_discover_starts_the_campaigns_creators_file_and_plan_invites_from_it(tmp_path: Path, start: str):
    # an unknown last activity (the marketplace gives none) is not inactivity
    campaign = discovery_campaign(tmp_path, "found.csv", active_within_days=120)
    out = tmp_path / "found.csv"
    if start != "missing":
        out.write_text("" if start == "empty" else "creator_id,handle,followers,category,note\n")
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, tmp_path / "l.db")
        found = json_out(run_cli("creators", "discover", "--campaign", campaign, "--out", out, "--limit", "60",
                                 "--json", env=env, check=0))
        run_cli("validate", campaign, env=env, check=0)
        plan = json_out(run_cli("plan", campaign, "--json", env=env, check=0))["plan"]
    assert found["added"] == 60 and len(load_creators(out).creators) == 60
    assert plan["creators"] > 0 and not any(k.startswith("targeting") for k in plan["skipped"])
    if start == "header only":  # its own columns kept, the discovered ones added
        assert next(csv.reader(out.open()))[:5] == ["creator_id", "handle", "followers", "category", "note"]


def test_discover_still_refuses_to_extend_a_malformed_creators_file(tmp_path: Path):
    campaign = discovery_campaign(tmp_path, "found.csv")
    (tmp_path / "found.csv").write_text("handle,followers\nmia,100\n")
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        proc = run_cli("creators", "discover", "--campaign", campaign, "--out", tmp_path / "found.csv",
                       env=env_for(sb, tmp_path / "l.db"), check=2)
        assert sb.stats()["by_endpoint"].get("search_creators", 0) == 0
    assert "no creator_id column" in proc.stderr
    assert (tmp_path / "found.csv").read_text() == "handle,followers\nmia,100\n"


def test_plan_targets_the_marketplaces_category_ids_that_discover_writes(tmp_path: Path):
    beauty, fashion = CATEGORY_IDS["beauty"], CATEGORY_IDS["fashion"]
    by_id = discovery_campaign(tmp_path / "ids", "found.csv", categories=[int(beauty), fashion])
    by_name = discovery_campaign(tmp_path / "names", "found.csv", categories=["beauty", "fashion"])
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        env = env_for(sb, tmp_path / "l.db")
        run_cli("creators", "discover", "--campaign", by_id, "--out", tmp_path / "ids" / "found.csv", "--limit",
                "100", env=env, check=0)
        (tmp_path / "names" / "found.csv").write_bytes((tmp_path / "ids" / "found.csv").read_bytes())
        targeted = json_out(run_cli("plan", by_id, "--json", env=env, check=0))["plan"]
        named = run_cli("plan", by_name, "--json", env=env, check=0)
        checked = run_cli("validate", by_name, env=env, check=0)
    rows = list(csv.DictReader((tmp_path / "ids" / "found.csv").open()))
    wanted = sum(1 for r in rows if r["category"] in (beauty, fashion))
    assert 0 < wanted < len(rows) and targeted["creators"] > 0
    assert targeted["skipped"]["targeting: category"] == len(rows) - wanted
    # names cannot match the ids: every creator is left out, and both commands say why
    assert json_out(named)["plan"]["creators"] == 0
    for proc in (named, checked):
        assert "warning: targeting.categories: no creator in the creators file has one of these" in proc.stderr
        assert "the marketplace's category ids" in proc.stderr


def test_the_saved_plan_flow_keeps_creator_attributes_in_the_ledger(tmp_path: Path):
    campaign = write_campaign(tmp_path, 30)
    ledger = tmp_path / "l.db"
    with SandboxServer(SandboxSettings(ineligible_permille=0, weekly_outreach=1_000_000)) as sb:
        env = env_for(sb, ledger)
        run_cli("plan", campaign, "--out", tmp_path / "plan.json", env=env, check=0)
        run_cli("execute", tmp_path / "plan.json", "--yes", env=env, check=0)
    conn = sqlite3.connect(ledger)
    rows = conn.execute("SELECT followers, gmv_30d, category, engagement_rate, last_active, creator_user_id "
                        "FROM creators").fetchall()
    assert len(rows) == 30 and all(r[0] is not None and r[2] and r[4] and r[5] for r in rows)


def marketplace_creator(open_id: str, **fields) -> dict:
    return {"creator_open_id": open_id, "username": open_id, "follower_count": 20_000, **fields}


@pytest.mark.parametrize(("fields", "gmv", "units"), [
    ({"gmv": {"currency": "USD", "amount": "1232.90"}, "units_sold_range": {"minimum_amount": 100,
                                                                           "maximum_amount": 1000}}, "1232.90", "550"),
    # the open top bands: their maximum empty, -1, null, left out, unreadable or below the minimum
    ({"gmv_range": {"minimum_amount": "10000.00", "maximum_amount": ""},
      "units_sold_range": {"minimum_amount": 1000, "maximum_amount": -1}}, "10000", "1000"),
    ({"gmv_range": {"minimum_amount": "10000.00", "maximum_amount": None},
      "units_sold_range": {"minimum_amount": "1000", "maximum_amount": None}}, "10000", "1000"),
    ({"gmv_range": {"minimum_amount": 10000}, "units_sold_range": {"minimum_amount": 1000}}, "10000", "1000"),
    ({"gmv_range": {"minimum_amount": "10000.00", "maximum_amount": "-1"},
      "units_sold_range": {"minimum_amount": 1000, "maximum_amount": "+"}}, "10000", "1000"),
    ({"gmv_range": {"minimum_amount": "10000.00", "maximum_amount": "100.00"},
      "units_sold_range": {"minimum_amount": 1000, "maximum_amount": 10}}, "10000", "1000"),
    ({"gmv_range": {"minimum_amount": "100.00", "maximum_amount": 1000}}, "550", ""),
    # `gmv` there but saying nothing: the range is what the creator shares
    ({"gmv": {"currency": "USD", "amount": ""}, "gmv_range": {"minimum_amount": "10000.00",
                                                               "maximum_amount": ""}}, "10000", ""),
    ({"gmv": {"currency": "USD", "amount": None}, "gmv_range": {"minimum_amount": "1.00",
                                                                 "maximum_amount": "100.34"}}, "50.67", ""),
    ({"gmv": {"currency": "USD"}, "gmv_range": {"minimum_amount": "1000.00", "maximum_amount": "10000.00"}},
     "5500", ""),
    ({"gmv": {"amount": "n/a"}, "gmv_range": {"minimum_amount": "10000.00"}}, "10000", ""),
    ({"gmv": None, "gmv_range": None, "units_sold_range": {"minimum_amount": None, "maximum_amount": 10}}, "", ""),
    ({}, "", ""),
])
def test_marketplace_ranges_read_open_top_bands_as_their_minimum(fields, gmv, units):
    row = creator_row(marketplace_creator("c1", **fields))
    assert (row["gmv_30d"], row["units_sold"]) == (gmv, units)


def test_discover_writes_the_open_top_bands_as_the_biggest_creators_over_http(tmp_path: Path):
    out = tmp_path / "found.csv"
    top = marketplace_creator("top-seller", gmv={"currency": "USD", "amount": ""},
                              gmv_range={"currency": "USD", "minimum_amount": "10000.00", "maximum_amount": "",
                                         "formatted_range": "$10000+"},
                              units_sold_range={"minimum_amount": 1000, "maximum_amount": -1,
                                                "formatted_range": "1000+"})
    small = marketplace_creator("small-seller", gmv_range={"currency": "USD", "minimum_amount": "0.00",
                                                           "maximum_amount": "100.00"},
                                units_sold_range={"minimum_amount": 0, "maximum_amount": 10})
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        sb.script("search_creators", [{"data": {"creators": [top, small], "next_page_token": ""}}])
        doc = json_out(run_cli("creators", "discover", "--brand", "b", "--out", out, "--limit", "10", "--json",
                               env=env_for(sb, tmp_path / "l.db"), check=0))
    assert doc["added"] == 2 and doc["pages"] == 1
    rows = {r["creator_id"]: r for r in csv.DictReader(out.open())}
    assert (rows["top-seller"]["gmv_30d"], rows["top-seller"]["units_sold"]) == ("10000", "1000")
    assert (rows["small-seller"]["gmv_30d"], rows["small-seller"]["units_sold"]) == ("50", "5")
    by_id = {c.creator_id: c for c in load_creators(out).creators}
    assert by_id["top-seller"].gmv_30d > by_id["small-seller"].gmv_30d


def test_discover_stops_when_the_marketplace_gives_back_a_page_token_already_used(tmp_path: Path):
    page = [{"data": {"creators": [marketplace_creator(f"c{i}")], "next_page_token": token}}
            for i, token in enumerate(("p2", "p3", "p2", "p3", "p2", "p3"))]
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        sb.script("search_creators", page)
        doc = json_out(run_cli("creators", "discover", "--brand", "b", "--out", tmp_path / "f.csv", "--limit",
                               "100", "--json", env=env_for(sb, tmp_path / "l.db"), check=0))
        searches = sb.stats()["by_endpoint"]["search_creators"]
    # page 1, then p2 and p3; page p3 names p2 again
    assert doc["exit_code"] == 0 and doc["pages"] == searches == 3 and doc["added"] == 3
    assert doc["stop_reason"] == "page_token_repeated" and doc["errors"][0]["stop"] == "page_token_repeated"


def test_discover_stops_after_three_pages_in_a_row_without_creators(tmp_path: Path):
    def page(token: str, *ids: str, creators: object = ()) -> dict:
        return {"data": {"creators": [marketplace_creator(i) for i in ids] or creators, "next_page_token": token}}

    answers = [page("a", "c0"), {"data": {"next_page_token": "b"}}, page("c"), page("d", "c1"),
               page("e"), page("f", creators=None), page("g"), page("h", "c2")]
    with SandboxServer(SandboxSettings(ineligible_permille=0)) as sb:
        sb.script("search_creators", answers)
        proc = run_cli("creators", "discover", "--brand", "b", "--out", tmp_path / "f.csv", "--limit", "100",
                       env=env_for(sb, tmp_path / "l.db"), check=0)
        searches = sb.stats()["by_endpoint"]["search_creators"]
    # two empty pages, one with a creator, then three empty ones: no eighth request
    assert proc.returncode == 0 and searches == 7
    assert "2 creator(s) added" in proc.stdout and "stopped: empty_pages" in proc.stdout
