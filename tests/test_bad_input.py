"""A corpus of malformed campaign, creators and plan files: each exits 2 with its location, no
traceback, and the ledger's bytes unchanged."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trendio_cli.cli import app
from trendio_cli.ledger import Ledger

BASE = """\
campaign: corpus
brand: corpusbrand
products:
  - id: "1729384756"
    commission: 15%
message: "Hi! {brand} would love to work with you."
end_date: 2099-12-31
contact_email: partners@corpus.example
creators:
  file: creators.csv
tiers:
  - {name: big, min_followers: 10000}
  - {name: small, min_followers: 0}
schedule:
  timezone: UTC
  days: [mon, tue, wed, thu, fri, sat, sun]
  daily_target: 300
"""
CREATORS = "creator_id,handle,followers\n1,a,100\n2,b,20000\n"


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


CAMPAIGNS: dict[str, str | bytes] = {
    "yaml-syntax": edit("days: [mon, tue", "days: [mon, tue\n  oops: ["),
    "tab-indent": edit("  timezone: UTC", "\ttimezone: UTC"),
    "duplicate-key": edit("brand: corpusbrand", "brand: corpusbrand\nbrand: again"),
    "unknown-key": edit("brand: corpusbrand", "brand: corpusbrand\nbrnd: x"),
    "unknown-nested-key": edit("  daily_target: 300", "  daily_target: 300\n  dayly_cap: 4"),
    "wrong-type": edit("daily_target: 300", "daily_target: lots"),
    "negative": edit("daily_target: 300", "daily_target: -300"),
    "absurd-rate": edit("end_date: 2099-12-31", "end_date: 2099-12-31\nlimits: {requests_per_second: 5000}"),
    "absurd-daily-requests": edit("end_date: 2099-12-31", "end_date: 2099-12-31\nlimits: {daily_requests: 10000000}"),
    "empty-products": edit('products:\n  - id: "1729384756"\n    commission: 15%', "products: []"),
    "empty-tiers": edit("tiers:\n  - {name: big, min_followers: 10000}\n  - {name: small, min_followers: 0}",
                        "tiers: []"),
    "product-id-letters": edit('id: "1729384756"', 'id: "abc"'),
    "commission-zero": edit("commission: 15%", "commission: 0%"),
    "commission-huge": edit("commission: 15%", "commission: 200%"),
    "commission-text": edit("commission: 15%", "commission: generous"),
    "bad-date": edit("end_date: 2099-12-31", "end_date: 2099-13-45"),
    "bad-timezone": edit("timezone: UTC", "timezone: Moon/Base"),
    "no-days": edit("days: [mon, tue, wed, thu, fri, sat, sun]", "days: []"),
    "bad-weekday": edit("days: [mon, tue, wed, thu, fri, sat, sun]", "days: [mon, caturday]"),
    "unknown-placeholder": edit("Hi! {brand}", "Hi {name}"),
    "broken-braces": edit("Hi! {brand}", "Hi {brand"),
    "bad-email": edit("partners@corpus.example", "not-an-email"),
    "brand-with-spaces": edit("brand: corpusbrand", "brand: Corpus Brand"),
    "empty-campaign-id": edit("campaign: corpus", 'campaign: ""'),
    "missing-required": edit("campaign: corpus\n", ""),
    "list-not-mapping": "- campaign: corpus\n- brand: x\n",
    "empty-file": "",
    "only-comments": "# nothing here\n# at all\n",
    "not-utf8": BASE.encode().replace(b"Hi!", b"Hi \xff\xfe"),
    "crlf-with-error": edit("daily_target: 300", "daily_target: zero").replace("\n", "\r\n"),
    "unreachable-tier": edit("  - {name: small, min_followers: 0}", "  - {name: small, min_followers: 20000}"),
    "reserve-too-big": edit("end_date: 2099-12-31",
                            "end_date: 2099-12-31\nlimits: {daily_requests: 100, reserve_requests: 100}"),
    "missing-creators-file": edit("file: creators.csv", "file: nowhere.csv"),
    "creators-is-a-directory": edit("file: creators.csv", "file: subdir"),
    "python-tag": edit("campaign: corpus", "campaign: !!python/object/apply:os.system ['echo hacked']"),
    "billion-laughs": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                      "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
    "deep-nesting": "campaign: " + "[" * 5000 + "]" * 5000 + "\n",
    "huge-file": BASE + "# " + "x" * (6 * 1024 * 1024) + "\n",
    "ended-campaign": edit("end_date: 2099-12-31", "end_date: 2020-01-01"),
    "non-string-key": "? [a, b]\n: 1\n" + BASE,
}
CREATORS_FILES: dict[str, str | bytes] = {
    "creators-empty": "",
    "creators-no-id-column": "handle,followers\na,1\n",
    "creators-bad-followers": "creator_id,followers\n1,lots\n",
    "creators-negative": "creator_id,followers\n1,-5\n",
    "creators-duplicate-header": "creator_id,followers,followers\n1,1,2\n",
    "creators-field-count": "creator_id,followers\n1,2,3\n",
    "creators-not-utf8": b"creator_id,handle\n1,\xff\xfe\n",
    "creators-bad-date": "creator_id,last_active\n1,yesterday\n",
    "creators-jsonl-garbage": "{not json}\n",
    "creators-bad-id": "creator_id\nhas space\n",
}
PLANS: dict[str, str] = {
    "plan-invalid-json": "{\"format\": 1,,}",
    "plan-not-a-plan": json.dumps({"hello": "world"}),
    "plan-missing-keys": json.dumps({"format": 1, "plan_id": "x"}),
    "plan-oversized-batch": None,  # built from a real plan below
    "plan-bad-campaign": None,
}


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subdir").mkdir()
    (tmp_path / "creators.csv").write_text(CREATORS)
    ledger = tmp_path / "ledger.db"
    Ledger.open(ledger).close()
    monkeypatch.setenv("TRENDIO_LEDGER", str(ledger))
    monkeypatch.setenv("TRENDIO_BASE_URL", "http://127.0.0.1:9")  # nothing listens: nothing may be sent
    return tmp_path, ledger


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def located(output: str, path: Path) -> bool:
    return bool(re.search(rf"{re.escape(str(path))}:\d+:\d+: ", output)) or f"{path}:" in output


def check_rejected(path: Path, ledger: Path, commands=("validate", "plan", "dry-run", "execute")) -> None:
    before = ledger.read_bytes()
    for command in commands:
        args = [command, str(path)] + (["--yes"] if command == "execute" else [])
        result = invoke(*args)
        out = result.output
        assert result.exit_code == 2, (command, result.exit_code, out[-800:])
        assert "Traceback" not in out and "internal error" not in out, out[-800:]
        assert located(out, path) or command != "validate" or "no such" in out, (command, out[-800:])
    assert ledger.read_bytes() == before


@pytest.mark.parametrize("name", sorted(CAMPAIGNS))
def test_malformed_campaign_files(workdir, name):
    tmp, ledger = workdir
    path = tmp / f"{name}.yaml"
    _write(path, CAMPAIGNS[name])
    commands = ("plan", "execute") if name == "ended-campaign" else ("validate", "plan", "dry-run", "execute")
    check_rejected(path, ledger, commands)


@pytest.mark.parametrize("name", sorted(CREATORS_FILES))
def test_malformed_creators_files(workdir, name):
    tmp, ledger = workdir
    suffix = ".jsonl" if "jsonl" in name else ".csv"
    _write(tmp / f"{name}{suffix}", CREATORS_FILES[name])
    path = tmp / f"{name}.yaml"
    path.write_text(BASE.replace("file: creators.csv", f"file: {name}{suffix}"))
    before = ledger.read_bytes()
    for command in ("validate", "plan", "execute"):
        result = invoke(command, str(path), *(["--yes"] if command == "execute" else []))
        assert result.exit_code == 2, (command, result.output[-800:])
        assert re.search(rf"{re.escape(name)}{suffix}:\d+:\d+: ", result.output), result.output[-800:]
        assert "Traceback" not in result.output
    assert ledger.read_bytes() == before


@pytest.mark.parametrize("name", sorted(PLANS))
def test_malformed_plan_files(workdir, name):
    tmp, ledger = workdir
    path = tmp / f"{name}.json"
    if PLANS[name] is None:
        campaign = tmp / "ok.yaml"
        campaign.write_text(BASE)
        assert invoke("plan", str(campaign), "--out", str(path)).exit_code == 0
        doc = json.loads(path.read_text())
        if name == "plan-oversized-batch":
            doc["batches"][0]["creator_ids"] = [str(i) for i in range(51)]
        else:
            doc["campaign_spec"]["schedule"]["daily_target"] = -1
        path.write_text(json.dumps(doc))
    else:
        path.write_text(PLANS[name])
    check_rejected(path, ledger, ("validate", "dry-run", "execute"))


def test_missing_directory_and_broken_symlink(workdir):
    tmp, ledger = workdir
    os.symlink(tmp / "gone.yaml", tmp / "dangling.yaml")
    for path in (tmp / "absent.yaml", tmp / "subdir", tmp / "dangling.yaml"):
        check_rejected(path, ledger)


@pytest.mark.parametrize("variant", ["bom", "crlf", "bom-crlf"])
def test_a_bom_and_crlf_line_endings_are_fine(workdir, variant):
    tmp, _ = workdir
    text = BASE.replace("\n", "\r\n") if "crlf" in variant else BASE
    data = ("\ufeff" + text).encode() if "bom" in variant else text.encode()
    (tmp / "c.yaml").write_bytes(data)
    (tmp / "creators.csv").write_bytes(("\ufeff" if "bom" in variant else "").encode() + CREATORS.encode())
    result = invoke("validate", str(tmp / "c.yaml"))
    assert result.exit_code == 0, result.output


def test_the_corpus_is_big_enough():
    assert len(CAMPAIGNS) + len(CREATORS_FILES) + len(PLANS) >= 40
