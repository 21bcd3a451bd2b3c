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
    # message templates: only plain {name} placeholders (a format spec or a conversion crashed execute,
    # a width spec made 50 MB bodies), and a rendered message within the limit
    "format-spec": edit("Hi! {brand}", "Hi {handle:d}! {brand}"),
    "conversion": edit("Hi! {brand}", "Hi! {product_count!z} {brand}"),
    "width-spec": edit("Hi! {brand}", "Hi {handle:>99999999}! {brand}"),
    "nested-spec": edit("Hi! {brand}", "Hi {handle:{brand}}"),
    "tier-format-spec": edit("{name: big, min_followers: 10000}",
                             '{name: big, min_followers: 10000, message: "{tier:Q}"}'),
    "message-too-long-rendered": edit('message: "Hi! {brand} would love to work with you."',
                                      'message: "' + "x" * 1960 + "{brand}" * 5 + '"'),
    "message-control-character": edit("Hi! {brand}", "Hi!\\e[2J {brand}"),
    # commissions: not finite, absurd, or outside the platform's 10%..80%
    "commission-inf": edit("commission: 15%", "commission: .inf"),
    "commission-nan": edit("commission: 15%", "commission: .nan"),
    "commission-inf-percent": edit("commission: 15%", 'commission: "inf%"'),
    "commission-huge-exponent-percent": edit("commission: 15%", 'commission: "1E+999999999%"'),
    "commission-below-platform-minimum": edit("commission: 15%", "commission: 5%"),
    "tier-commission-below-minimum": edit("{name: big, min_followers: 10000}",
                                          "{name: big, min_followers: 10000, commission: 0.05}"),
    # the platform requires seller_contact_info.email
    "no-contact-email": edit("contact_email: partners@corpus.example\n", ""),
    "contact-email-nul": edit("partners@corpus.example", '"part\\0ners@corpus.example"'),
    # a folder of the tz database is no time zone (ZoneInfo raised IsADirectoryError)
    "timezone-folder-america": edit("timezone: UTC", "timezone: America"),
    "timezone-folder-etc": edit("timezone: UTC", "timezone: Etc"),
    "quota-timezone-folder": edit("end_date: 2099-12-31", "end_date: 2099-12-31\nlimits: {quota_timezone: Etc}"),
    "nul-byte": edit("campaign: corpus", "campaign: corpus # \0"),
    "nul-in-creators-path": edit("file: creators.csv", 'file: "creators\\0.csv"'),
    "requests-per-second-tiny": edit("end_date: 2099-12-31",
                                     "end_date: 2099-12-31\nlimits: {requests_per_second: 1.0e-300}"),
    "requests-per-second-zero-ish": edit("end_date: 2099-12-31",
                                         "end_date: 2099-12-31\nlimits: {requests_per_second: 0.01}"),
    "product-id-unicode-digits": edit('id: "1729384756"', 'id: "\u0661\u0667\u0662\u0669"'),
    "product-id-superscript": edit('id: "1729384756"', 'id: "17\u00b2"'),
    "tier-min-followers-huge": edit("{name: big, min_followers: 10000}",
                                    "{name: big, min_followers: 100000000000000000000000}"),
    "targeting-gmv-inf": edit("end_date: 2099-12-31", "end_date: 2099-12-31\ntargeting: {min_gmv_30d: .inf}"),
    "priority-huge": edit("end_date: 2099-12-31", "end_date: 2099-12-31\npriority: 100000000000000000000"),
    "api-version-unknown": edit("end_date: 2099-12-31", "end_date: 2099-12-31\napi_version: '202612'"),
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
    # numbers that overflowed SQLite later, read in both the fast and the careful path
    "creators-followers-1e308": "creator_id,followers\n1,1e308\n",
    "creators-followers-2-63": "creator_id,followers\n1,9223372036854775808\n",
    "creators-followers-quoted-huge": 'creator_id,followers\n"1","9223372036854775808"\n',
    "creators-followers-unicode-digits": "creator_id,followers\n1,\u0661\u0662\u0663\n",
    "creators-gmv-huge": "creator_id,gmv_30d\n1,1e300\n",
    "creators-jsonl-followers-huge": '{"creator_id": "1", "followers": 1e308}\n',
    "creators-jsonl-followers-2-63": '{"creator_id": "1", "followers": 9223372036854775808}\n',
    # ids: ASCII letters, digits, '-' and '_' only
    "creators-unicode-digit-id": "creator_id\n\u0661\u0662\u0663\n",
    "creators-id-with-dot": "creator_id\na.b\n",
    "creators-id-too-long": "creator_id\n" + "7" * 300 + "\n",
    "creators-jsonl-bool-id": '{"creator_id": true}\n',
    "creators-jsonl-float-id": '{"creator_id": 1e5}\n',
    "creators-jsonl-list-id": '{"creator_id": ["1"]}\n',
    "creators-jsonl-nan": '{"creator_id": "1", "notes": NaN}\n',
    "creators-jsonl-deep": '{"creator_id": "1", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
    "creators-jsonl-deep-extra": '{"creator_id": "1", "x": ' + "[" * 500 + "]" * 500 + "}\n",
    "creators-unterminated-quote": 'creator_id,handle\n1,a\n2,"b\n3,c\n',
    "creators-user-id-letters": "creator_id,creator_user_id\n1,abc\n",
    "creators-handle-control": "creator_id,handle\n1,a\x1b[2Jb\n",
    "creators-handle-too-long": "creator_id,handle\n1," + "h" * 300 + "\n",
}
PLANS: dict[str, str] = {
    "plan-invalid-json": "{\"format\": 1,,}",
    "plan-not-a-plan": json.dumps({"hello": "world"}),
    "plan-missing-keys": json.dumps({"format": 1, "plan_id": "x"}),
    "plan-deep-nesting": '{"format": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


def _set(*path_and_value):
    *path, value = path_and_value

    def apply(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return apply


def _batch(key, value):
    return _set("batches", 0, key, value)


# Edits of a real plan file: each must be refused before anything is sent, naming the field.
PLAN_EDITS = {
    "plan-oversized-batch": (_batch("creator_ids", [str(i) for i in range(51)]), "batches[0].creator_ids"),
    "plan-bad-campaign": (_set("campaign_spec", "schedule", "daily_target", -1), "campaign_spec.schedule"),
    "plan-unknown-product": (_batch("product_ids", ["999"]), "batches[0].product_ids[0]"),
    "plan-creator-twice": (_batch("creator_ids", ["1", "1"]), "batches[0]"),
    "plan-batch-twice": (_set("batches", lambda b: b + b), "batches[1].key"),
    "plan-same-pair-twice": (_set("batches", lambda b: b + [{**b[0], "key": b[0]["key"] + "x"}]),
                             "batches[1].creator_ids"),
    "plan-creator-ids-string": (_batch("creator_ids", "12"), "batches[0].creator_ids"),
    "plan-null-creator": (_batch("creator_ids", [None, "2"]), "batches[0].creator_ids[0]"),
    "plan-nan-creator": (_batch("creator_ids", [float("nan"), "2"]), "batches[0].creator_ids[0]"),
    "plan-number-creator": (_batch("creator_ids", [1, "2"]), "batches[0].creator_ids[0]"),
    "plan-unicode-digit-creator": (_batch("creator_ids", ["\u0661", "2"]), "batches[0].creator_ids[0]"),
    "plan-brand-mismatch": (_set("brand", "otherbrand"), "brand"),
    "plan-unknown-tier": (_batch("tier", "nope"), "batches[0].tier"),
    "plan-unknown-creator-tier": (_batch("creator_tiers", ["small", "huge"]), "batches[0].creator_tiers[1]"),
    "plan-creator-not-in-file": (_batch("creator_ids", ["777777", "2"]), "batches[0].creator_ids[0]"),
    "plan-requests-do-not-add-up": (_set("requests", "total", 0), "requests"),
    "plan-message-format-spec": (_set("campaign_spec", "message", "Hi {handle:d}"), "campaign_spec.message"),
    "plan-commission-below-minimum": (_set("campaign_spec", "products", 0, "commission", 500),
                                      "campaign_spec.products[0].commission"),
    "plan-rate-tiny": (_set("campaign_spec", "limits", "requests_per_second", 1e-300),
                       "campaign_spec.limits.requests_per_second"),
    "plan-ended": (_set("campaign_spec", "end_date", "2020-01-01"), "campaign_spec.end_date"),
    "plan-no-contact-email": (lambda doc: doc["campaign_spec"].pop("contact_email"), "contact_email"),
    "plan-handle-too-long": (_batch("handles", ["h" * 300, "b"]), "batches[0].handles[0]"),
    "plan-unknown-batch-field": (_batch("surprise", 1), "batches[0]"),
    "plan-quota-not-a-number": (_set("quota", "used", "lots"), "quota.used"),
    "plan-infinite-quota": (_set("quota", "limit", float("inf")), "quota.limit"),
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
    check_rejected(path, ledger)


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
    path.write_text(PLANS[name])
    check_rejected(path, ledger, ("validate", "dry-run", "execute"))


def _real_plan(tmp: Path, path: Path) -> dict:
    campaign = tmp / "ok.yaml"
    campaign.write_text(BASE)
    assert invoke("plan", str(campaign), "--out", str(path)).exit_code == 0
    doc = json.loads(path.read_text())
    assert doc["batches"][0]["creator_ids"] == ["1", "2"], doc["batches"]  # what the edits assume
    return doc


@pytest.mark.parametrize("name", sorted(PLAN_EDITS))
def test_crafted_plan_files_are_refused_naming_the_field(workdir, name):
    tmp, ledger = workdir
    path = tmp / f"{name}.json"
    doc = _real_plan(tmp, path)
    mutate, field = PLAN_EDITS[name]
    mutate(doc)
    path.write_text(json.dumps(doc))
    check_rejected(path, ledger, ("validate", "dry-run", "execute"))
    out = invoke("validate", str(path)).output
    assert f"{path}:1:1: " in out and field in out, out[-800:]
    assert "Input should" not in out and "valid string" not in out, out[-800:]


def test_an_untouched_plan_file_is_fine(workdir):
    tmp, _ = workdir
    path = tmp / "plan.json"
    _real_plan(tmp, path)
    assert invoke("validate", str(path)).exit_code == 0
    assert invoke("dry-run", str(path)).exit_code == 0


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
    assert len(CAMPAIGNS) + len(CREATORS_FILES) + len(PLANS) + len(PLAN_EDITS) >= 120


def test_a_creators_file_in_a_symlink_loop(workdir):
    tmp, ledger = workdir
    os.symlink(tmp / "loop-b", tmp / "loop-a")
    os.symlink(tmp / "loop-a", tmp / "loop-b")
    path = tmp / "loop.yaml"
    path.write_text(BASE.replace("file: creators.csv", "file: loop-a"))
    check_rejected(path, ledger)
