"""Campaign and creators files: the model, and problems located by file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import REPO, run_cli
from trendio_cli.campaign import parse_campaign, parse_commission
from trendio_cli.commands.validate import validate_files
from trendio_cli.creators import parse_creators

GOOD = """\
campaign: spring-glow-2026
brand: glowlab
products:
  - id: "1729384756"
    commission: 15%
message: "Hi, we would love to work with you on {product_count} products."
end_date: 2099-12-31
contact_email: partners@glowlab.example
free_sample: true
creators:
  file: creators.csv
tiers:
  - {name: macro, min_followers: 100000, daily_cap: 40,  commission: 20%}
  - {name: mid,   min_followers: 10000,  daily_cap: 150}
  - {name: micro, min_followers: 1000,   daily_cap: 400}
schedule:
  timezone: America/Los_Angeles
  days: [mon, tue, wed, thu, fri]
  daily_target: 300
limits:
  requests_per_second: 50
  daily_requests: 10000
  reserve_requests: 500
  weekly_outreach: 5000
"""


def problems_of(text: str) -> list[str]:
    campaign, problems = parse_campaign(text, "c.yaml")
    return [str(p) for p in problems]


def test_the_product_brief_example_is_valid():
    campaign, problems = parse_campaign(GOOD, "c.yaml")
    assert problems == []
    assert campaign.products[0].commission == 1500
    assert campaign.tiers[0].commission == 2000
    assert campaign.tier_for(150_000).name == "macro" and campaign.tier_for(500) is None
    assert campaign.schedule.days == ["mon", "tue", "wed", "thu", "fri"]


@pytest.mark.parametrize("value", ["15%", 0.15, 1500, "0.15", "1500", " 15 % ".replace(" % ", "%"), "15.00%"])
def test_commission_forms_all_mean_fifteen_percent(value):
    assert parse_commission(value) == 1500


@pytest.mark.parametrize("value", ["abc", "0%", "90%", 0, -5, True, None, "15.555%", 50])
def test_bad_commissions_are_refused(value):
    with pytest.raises(ValueError):
        parse_commission(value)


@given(st.integers(min_value=1000, max_value=8000))
def test_commission_round_trips_in_all_three_forms(hundredths):
    assert parse_commission(hundredths) == hundredths
    assert parse_commission(f"{hundredths / 100}%") == hundredths
    assert parse_commission(str(hundredths / 10000)) == hundredths


def test_every_problem_is_reported_with_its_line_and_column():
    text = GOOD.replace("daily_target: 300", "daily_target: -3").replace("brand: glowlab", "brand: glowlab\nbrnd: x")
    text = text.replace("commission: 15%", "commission: lots")
    found = problems_of(text)
    assert len(found) == 3, found
    assert any(p.startswith("c.yaml:3:1: unknown key 'brnd': did you mean 'brand'?") for p in found), found
    assert any(p.startswith("c.yaml:6:17:") and "commission" in p for p in found), found
    assert any(p.startswith("c.yaml:20:17:") and "daily_target" in p for p in found), found


def test_unknown_nested_key_gets_a_hint_and_its_own_line():
    found = problems_of(GOOD.replace("  daily_target: 300", "  daily_targt: 300"))
    assert any("c.yaml:19:3: unknown key 'daily_targt': did you mean 'daily_target'?" in p for p in found), found
    assert any("missing required field 'schedule.daily_target'" in p for p in found), found


def test_duplicate_keys_tabs_and_syntax_errors_are_located():
    dup = problems_of(GOOD.replace("brand: glowlab", "brand: glowlab\nbrand: other"))
    assert dup == ["c.yaml:3:1: duplicate key 'brand' (first on line 2)"]
    tab = problems_of(GOOD.replace("  daily_target: 300", "\tdaily_target: 300"))
    assert len(tab) == 1 and tab[0].startswith("c.yaml:19:") and "tab" in tab[0]
    syntax = problems_of("campaign: [unclosed\nbrand: x\n")
    assert len(syntax) == 1 and syntax[0].startswith("c.yaml:") and "YAML syntax error" in syntax[0]


@pytest.mark.parametrize("mutation, needle", [
    (("message: \"Hi, we", "message: \"Hi {nme}, we"), "unknown placeholder"),
    (("days: [mon, tue, wed, thu, fri]", "days: [mon, funday]"), "not a weekday"),
    (("timezone: America/Los_Angeles", "timezone: Mars/Olympus"), "time zone"),
    (("reserve_requests: 500", "reserve_requests: 10000"), "reserve_requests"),
    (("  - {name: micro, min_followers: 1000,   daily_cap: 400}", "  - {name: micro, min_followers: 50000}"),
     "can never match"),
    (("id: \"1729384756\"", "id: \"abc\""), "digits"),
    (("requests_per_second: 50", "requests_per_second: 500"), "requests_per_second"),
    (("contact_email: partners@glowlab.example", "contact_email: nope"), "contact_email"),
])
def test_field_rules(mutation, needle):
    found = problems_of(GOOD.replace(*mutation))
    assert found and any(needle in p for p in found), found


def test_empty_and_non_mapping_files():
    assert problems_of("") == ["c.yaml:1:1: the file is empty"]
    assert "mapping" in problems_of("- a\n- b\n")[0]


def test_creators_csv_bad_rows_are_named_by_line_and_repeats_merged():
    text = ("creator_id,handle,followers,engagement_rate,last_active,notes\n"
            "100,a,12000,0.05,2026-01-01,x\n"
            ",nobody,5,0.1,2026-01-01,\n"
            "101,b,many,0.05,2026-01-01,\n"
            "100,a2,,,,\n"
            "102,c,5,7,2026-13-01,\n")
    creators, problems = parse_creators(text, "cr.csv", "csv")
    rendered = [str(p) for p in problems]
    assert "cr.csv:3:1: creator_id is missing" in rendered
    assert any(r.startswith("cr.csv:4:3: followers") for r in rendered), rendered
    assert any(r.startswith("cr.csv:5:1: warning: creator 100 repeated (first on line 2)") for r in rendered)
    assert any(r.startswith("cr.csv:6:4: engagement_rate") for r in rendered), rendered
    assert any(r.startswith("cr.csv:6:5: last_active") for r in rendered), rendered
    assert [c.creator_id for c in creators] == ["100"]
    assert creators[0].handle == "a2" and creators[0].followers == 12000 and creators[0].extra == {"notes": "x"}


def test_creators_jsonl():
    text = '{"creator_id": "1", "followers": 10}\nnot json\n[1]\n{"creator_id": "2", "engagement_rate": "4%"}\n'
    creators, problems = parse_creators(text, "cr.jsonl", "jsonl")
    assert [c.creator_id for c in creators] == ["1", "2"]
    assert creators[1].engagement_rate == pytest.approx(0.04)
    assert [p.line for p in problems] == [2, 3]


def test_the_bundled_campaigns_validate():
    paths = sorted((REPO / "campaigns").glob("*/campaign.yaml"))
    assert len(paths) >= 2
    result = validate_files(paths)
    assert result["errors"] == 0, result


def test_validate_cli_exits_2_with_every_problem_and_0_when_clean(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("brand: glowlab", "brand: Glow Lab!").replace("daily_target: 300", "daily_target: x"))
    (tmp_path / "creators.csv").write_text("creator_id,followers\n1,10\n")
    proc = run_cli("validate", bad)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith(str(bad))]
    assert len(lines) == 2 and all(line.split(":")[1].isdigit() for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert run_cli("validate", good).returncode == 0
    missing = run_cli("validate", tmp_path / "nope.yaml", "--json")
    assert missing.returncode == 2
    import json
    doc = json.loads(missing.stdout)
    assert doc["status"] == "error" and "no such campaign file" in doc["errors"][0]["message"]


def test_missing_creators_file_is_reported_at_its_file_key(tmp_path: Path):
    c = tmp_path / "c.yaml"
    c.write_text(GOOD)
    result = validate_files([c])
    assert result["errors"] == 1
    problem = result["files"][0]["problems"][0]
    assert (problem["line"], "no such creators file" in problem["message"]) == (11, True)


def test_quoted_and_unquoted_csv_read_the_same_and_crlf_is_fine():
    plain = "creator_id,handle,followers\r\n1,ann,10\r\n2,bob,20\r\n"
    quoted = 'creator_id,handle,followers\r\n"1","ann",10\r\n2,"bob",20\r\n'
    a, pa = parse_creators(plain, "a.csv", "csv")
    b, pb = parse_creators(quoted, "b.csv", "csv")
    assert pa == pb == []
    assert [(c.creator_id, c.handle, c.followers, c.line) for c in a] == \
        [(c.creator_id, c.handle, c.followers, c.line) for c in b] == [("1", "ann", 10, 2), ("2", "bob", 20, 3)]
    commas = 'creator_id,handle,followers\n3,"x, the creator",1\n'
    c, p = parse_creators(commas, "c.csv", "csv")
    assert p == [] and c[0].handle == "x, the creator"
