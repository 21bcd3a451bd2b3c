"""Creators files and plan files read as untrusted input: ids, numbers, line splitting, quoting, special
files, and saved plans checked against their campaign and its creators."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import write_campaign
from trendio_cli.campaign import MAX_FOLLOWERS
from trendio_cli.commands.validate import validate_files
from trendio_cli.creators import KNOWN, MAX_ID, _FastRow, _row_to_creator, parse_creators
from trendio_cli.errors import ProblemsFound
from trendio_cli.inputs import load_plan

OPEN_ID = "uACafQAAAABmUU2qon4R0vUYvUVS3QC6CICP2m5A2-wd77j8R9G0yg"  # the reference's example


def rows(text: str, fmt: str = "csv"):
    creators, problems = parse_creators(text, "f." + fmt, fmt)
    return creators, [str(p) for p in problems]


# --- ids -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cid", [OPEN_ID, "7" * MAX_ID, "a" * MAX_ID, "1", "a-b_c"])
def test_open_ids_and_plain_ids_are_kept_whole(cid):
    for text in (f"creator_id\n{cid}\n", f'creator_id\n"{cid}"\n', json.dumps({"creator_id": cid}) + "\n"):
        creators, problems = rows(text, "jsonl" if text.startswith("{") else "csv")
        assert problems == [] and [c.creator_id for c in creators] == [cid]


@pytest.mark.parametrize("cid", ["7" * (MAX_ID + 1), "a.b", "\u0661\u0662", "\u00b2", "a b", "a/b", "é", "x\x00"])
def test_ids_outside_the_open_id_alphabet_are_refused(cid):
    creators, problems = rows(f"creator_id,followers\n{cid},5\n")
    assert creators == [] and len(problems) == 1 and problems[0].startswith("f.csv:2:1: creator_id"), problems


@pytest.mark.parametrize("value", ["true", "1e5", "1.0", "-5", "[1]", '{"a": 1}', "null"])
def test_jsonl_ids_must_be_strings_or_whole_numbers(value):
    creators, problems = rows(f'{{"creator_id": {value}}}\n', "jsonl")
    assert creators == [] and len(problems) == 1 and problems[0].startswith("f.jsonl:1:"), problems


# --- creator_user_id --------------------------------------------------------------------------------------
def test_creator_user_id_is_a_field_and_survives_the_merge_of_repeated_rows():
    text = (f"creator_id,creator_user_id,followers,notes\n{OPEN_ID},,10,x\n"
            f"{OPEN_ID},6900000000000000001,,\n2,6900000000000000002,5,\n")
    creators, problems = rows(text)
    assert [p for p in problems if "warning" not in p] == []
    first = creators[0]
    assert first.creator_user_id == "6900000000000000001" and first.followers == 10
    assert first.extra == {"notes": "x"}  # not in extra
    assert creators[1].creator_user_id == "6900000000000000002"
    jsonl, problems = rows(json.dumps({"creator_id": "3", "creator_user_id": 6900000000000000003}) + "\n", "jsonl")
    assert problems == [] and jsonl[0].creator_user_id == "6900000000000000003" and jsonl[0].extra is None


@pytest.mark.parametrize("value", ["abc", "12.5", "-1", "\u0661", "1" * 65])
def test_creator_user_id_is_digits(value):
    creators, problems = rows(f"creator_id,creator_user_id\n1,{value}\n")
    assert creators == [] and problems[0].startswith("f.csv:2:2: creator_user_id"), problems


# --- numbers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quoted", [False, True])
def test_followers_are_bounded_in_every_path(quoted):
    q = '"' if quoted else ""
    ok, problems = rows(f"creator_id,followers\n1,{q}{MAX_FOLLOWERS}{q}\n")
    assert problems == [] and ok[0].followers == MAX_FOLLOWERS
    for bad in (MAX_FOLLOWERS + 1, 2**63, "1e308", "1e13", "\u0661\u0662", "-1", "nan", "inf"):
        creators, problems = rows(f"creator_id,followers\n1,{q}{bad}{q}\n")
        assert creators == [] and problems[0].startswith("f.csv:2:2: followers"), (bad, problems)
    for bad in (MAX_FOLLOWERS + 1, 2**63, 1e308, True, "1e13"):
        creators, problems = rows(json.dumps({"creator_id": "1", "followers": bad}) + "\n", "jsonl")
        col = json.dumps({"creator_id": "1", "followers": bad}).index('"followers"') + 1
        assert creators == [] and problems[0].startswith(f"f.jsonl:1:{col}: followers"), (bad, problems)


@pytest.mark.parametrize("column, bad", [("gmv_30d", "1e300"), ("gmv_30d", "inf"), ("gmv_30d", "nan"),
                                         ("gmv_30d", "-1"), ("engagement_rate", "1.5"), ("engagement_rate", "nan"),
                                         ("engagement_rate", "\u0660.5"), ("last_active", "9" * 40)])
def test_other_numbers_are_bounded(column, bad):
    creators, problems = rows(f"creator_id,{column}\n1,{bad}\n")
    assert creators == [] and problems[0].startswith(f"f.csv:2:2: {column}"), problems


def test_nan_and_infinity_are_not_json():
    creators, problems = rows('{"creator_id": "1", "notes": NaN}\n{"creator_id": "2", "x": -Infinity}\n', "jsonl")
    assert creators == [] and [p.split(":")[1] for p in problems] == ["1", "2"], problems


# --- lines and quotes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c"])
def test_jsonl_lines_end_at_newlines_only(separator):
    text = (json.dumps({"creator_id": "1", "category": f"a{separator}b"}, ensure_ascii=False) + "\r\n"
            + json.dumps({"creator_id": "2"}) + "\n")
    creators, problems = rows(text, "jsonl")
    # the separator is read as part of the string (a category must be printable, so it is refused by name)
    assert [c.creator_id for c in creators] == ["2"], (creators, problems)
    assert len(problems) == 1 and problems[0].startswith("f.jsonl:1:21: category"), problems


def test_a_jsonl_line_with_u2028_in_an_unknown_field_is_kept():
    text = json.dumps({"creator_id": "1", "bio": "line\u2028two\u0085three"}, ensure_ascii=False) + "\n"
    creators, problems = rows(text, "jsonl")
    assert problems == [] and creators[0].extra == {"bio": "line\u2028two\u0085three"}


def test_an_unterminated_quote_is_reported_on_the_line_it_opens():
    creators, problems = rows('creator_id,handle\n1,a\n2,"b\n3,c\n4,d\n')
    assert [c.creator_id for c in creators] == ["1"]
    assert problems == ["f.csv:3:3: a quoted field opens here and runs on to the end of the file: "
                        "is a closing quote missing?"]


def test_a_quote_closed_too_late_is_reported_where_it_opens_and_reading_goes_on():
    creators, problems = rows('creator_id,handle\n1,a\n2,"b\n3,c\n4,"d"x\n5,e\n')
    assert [c.creator_id for c in creators] == ["1", "5"] and [c.line for c in creators] == [2, 6]
    assert len(problems) == 1 and problems[0].startswith("f.csv:3:3: a quoted field opens here and runs on to "
                                                         "line 5"), problems


def test_rows_spanning_lines_are_named_by_their_first_line():
    creators, problems = rows('creator_id,notes,followers\n"1","ann",5\n2,"x\ny\nz",lots\n"3",c,7\n')
    assert [(c.creator_id, c.line) for c in creators] == [("1", 2), ("3", 6)]
    assert [p.split(":")[1] for p in problems] == ["3"], problems


# --- the fast path takes nothing the careful path refuses --------------------------------------------------
FIELD = st.one_of(
    st.sampled_from(["", "0", "5", "12000", str(MAX_FOLLOWERS), str(MAX_FOLLOWERS + 1), "-1", "1e5", "0.5", "nan",
                     "inf", "1e308", "\u0661", "2026-01-01", "2026-13-01", "x" * 300, " 7 ", OPEN_ID, "a.b"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters=",\n\r\""), max_size=12),
)


@settings(max_examples=400)
@given(st.lists(FIELD, min_size=len(KNOWN), max_size=len(KNOWN)), st.booleans())
def test_the_fast_path_accepts_only_what_the_careful_path_accepts(values, plain_fields):
    header = list(KNOWN)
    row = [v.replace(",", "") for v in values]
    text = ",".join(row)
    if plain_fields and not (text.isascii() and text.isprintable() and len(text) <= MAX_ID):
        plain_fields = False  # what the file-wide look would have found
    fast = _FastRow(header, plain_fields).convert(row, 2)
    if fast is None:
        return
    problems: list = []
    careful = _row_to_creator(dict(zip(header, row)), 2, "f.csv", problems, {})
    assert careful == fast and problems == [], (row, fast, careful, problems)


# --- special files -----------------------------------------------------------------------------------------
def _run_bounded(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """trendio in a process with 2 GB of address space and a minute: reading /dev/zero or waiting on a FIFO
    must end in neither."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    return subprocess.run([sys.executable, "-m", "trendio_cli", *args], capture_output=True, text=True,
                          timeout=60, preexec_fn=limit, cwd=cwd,
                          env={**os.environ, "TRENDIO_LEDGER": str(cwd / "l.db"), "COLUMNS": "1000",
                               "TRENDIO_BASE_URL": "http://127.0.0.1:9"})


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "fifo", "socket"])
def test_a_creators_file_that_is_no_regular_file_is_refused_before_reading(tmp_path: Path, special):
    if special == "fifo":
        os.mkfifo(tmp_path / "fifo")
        target = str(tmp_path / "fifo")
    elif special == "socket":
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(tmp_path / "sock"))
        target = str(tmp_path / "sock")
    else:
        target = special
    campaign = write_campaign(tmp_path, 5, creators_file="creators.csv")
    campaign.write_text(campaign.read_text().replace("file: creators.csv", f"file: {target}"))
    for command in ("validate", "plan", "execute"):
        proc = _run_bounded(command, str(campaign), *(["--yes"] if command == "execute" else []), cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.returncode, proc.stderr[-500:])
        assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert not (tmp_path / "l.db").exists()


@pytest.mark.parametrize("name", ["campaign.yaml", "plan.json", "plan"])
def test_a_campaign_or_plan_file_that_is_a_fifo_is_refused(tmp_path: Path, name):
    os.mkfifo(tmp_path / name)
    for command in ("validate", "dry-run", "execute"):
        proc = _run_bounded(command, name, *(["--yes"] if command == "execute" else []), cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.returncode, proc.stderr[-500:])
        assert "Traceback" not in proc.stderr, proc.stderr[-500:]


# --- plan files --------------------------------------------------------------------------------------------
def _plan(tmp_path: Path, campaign: Path, out: Path) -> dict:
    proc = _run_bounded("plan", str(campaign), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_a_plan_written_before_api_still_loads(tmp_path: Path):
    campaign = write_campaign(tmp_path, 20)
    out = tmp_path / "plan.json"
    doc = _plan(tmp_path, campaign, out)
    spec = doc["campaign_spec"]
    del spec["api"]
    spec["api_version"] = "202508"
    out.write_text(json.dumps(doc))
    assert load_plan(out).campaign_model().api == "open-ids"


def test_a_plans_creators_are_checked_for_their_legacy_ids(tmp_path: Path):
    campaign = write_campaign(tmp_path, 20)
    out = tmp_path / "plan.json"
    doc = _plan(tmp_path, campaign, out)
    doc["campaign_spec"]["api"] = "legacy-ids"
    out.write_text(json.dumps(doc))
    with pytest.raises(ProblemsFound) as info:
        load_plan(out)
    assert all("creator_user_id" in p for p in info.value.problems), info.value.problems


def test_a_plan_finds_its_campaign_from_another_directory(tmp_path: Path, monkeypatch):
    # `plan` records the campaign file as given (relative to where it ran); the plan file lives beside it
    work = tmp_path / "work"
    campaign = write_campaign(work, 20)
    monkeypatch.chdir(work)
    out = work / "plan.json"
    proc = _run_bounded("plan", campaign.name, "--out", "plan.json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["campaign_file"] == "campaign.yaml"
    monkeypatch.chdir(tmp_path)
    assert validate_files([out])["errors"] == 0
    (work / "creators.csv").rename(work / "gone.csv")
    result = validate_files([out])
    assert result["errors"] == 1 and "creators file" in result["files"][0]["rendered"][0], result


def test_a_plan_whose_campaign_file_is_gone_is_refused(tmp_path: Path):
    campaign = write_campaign(tmp_path, 20)
    out = tmp_path / "plan.json"
    _plan(tmp_path, campaign, out)
    campaign.rename(tmp_path / "moved.yaml")
    result = validate_files([out])
    assert result["errors"] == 1 and "campaign_file" in result["files"][0]["rendered"][0], result


FORBIDDEN = ("Input should", "String should", "should match pattern", "Value error", "valid integer",
             "Field required", "Extra inputs", "pydantic", "[type=", "Traceback")
ODD = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                st.lists(st.text(max_size=3), max_size=3),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _leaves(doc, path=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, (*path, i))
    if path:
        yield path


@pytest.fixture(scope="module")
def real_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    campaign = write_campaign(tmp, 30)
    out = tmp / "plan.json"
    return tmp, _plan(tmp, campaign, out)


@settings(max_examples=200)
@given(data=st.data())
def test_no_plan_file_problem_speaks_pydantic(real_plan, data):
    import copy

    from trendio_cli.plan_file import read_plan
    from trendio_cli.planner import PLAN_FORMAT, Batch

    tmp, doc = real_plan
    doc = copy.deepcopy(doc)
    path = data.draw(st.sampled_from(sorted(_leaves(doc), key=str)))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(ODD)
    plan = tmp / "fuzzed.json"
    plan.write_text(json.dumps(doc))
    try:
        read_plan(plan, PLAN_FORMAT, {f.name for f in Batch.__dataclass_fields__.values()})
    except ProblemsFound as exc:
        for problem in exc.problems:
            assert problem.startswith(f"{plan}:") and "\n" not in problem, problem
            assert not any(f in problem for f in FORBIDDEN), problem


@pytest.mark.parametrize("key", ["\n", "a\rb", "x\u2028y", "two words", "é"])
def test_an_unexpected_key_with_odd_characters_is_named_on_one_line(real_plan, key):
    """A key from the file is quoted in the field path, so a newline in it cannot break the message."""
    import copy

    from trendio_cli.plan_file import read_plan
    from trendio_cli.planner import PLAN_FORMAT, Batch

    tmp, doc = real_plan
    doc = copy.deepcopy(doc)
    doc["campaign_spec"]["products"][0] = {key: 1}
    plan = tmp / "odd-key.json"
    plan.write_text(json.dumps(doc))
    with pytest.raises(ProblemsFound) as caught:
        read_plan(plan, PLAN_FORMAT, {f.name for f in Batch.__dataclass_fields__.values()})
    named = [p for p in caught.value.problems if "products[0]" in p]
    assert named, caught.value.problems
    for problem in caught.value.problems:
        assert problem.startswith(f"{plan}:") and "\n" not in problem and "\r" not in problem, problem
        assert "\u2028" not in problem, problem
