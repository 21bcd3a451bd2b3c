"""Output safety (issue 17, part 5): text from files and the platform is data, never Rich markup nor terminal
control; no password or userinfo reaches output; files written for people are 0600 like the ledger; views
of a fresh PostgreSQL database work."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import uuid
from pathlib import Path

import pytest
import typer

from helpers import json_out, run_cli, write_campaign
from trendio_cli.sandbox.marketplace import write_creators_file

HOSTILE_HANDLES = ["[/x]", "[link=https://evil.example]click me[/link]", "[bold red]boo[/]", "[/]"]
CONTROL = ["\x1b[31mred\x1b[0m", "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07", "c1\x9b2J", "rtl\u202eevil"]
PG_ADMIN = os.environ.get("TRENDIO_TEST_PG_URL", "postgresql://trendio:trendio@127.0.0.1:5432/postgres")


def env_for(sb, ledger: Path, **extra: str) -> dict[str, str]:
    return {"TRENDIO_BASE_URL": sb.url, "TRENDIO_LEDGER": str(ledger), **extra}


def hostile_campaign(tmp_path: Path) -> tuple[Path, list[str]]:
    """A campaign whose creators file gives some creators handles that are Rich markup."""
    campaign = write_campaign(tmp_path, len(HOSTILE_HANDLES))
    path = tmp_path / "creators.csv"
    rows = list(csv.DictReader(path.open()))
    for row, handle in zip(rows, HOSTILE_HANDLES):
        row["handle"] = handle
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return campaign, [r["creator_id"] for r in rows]


def test_handles_that_look_like_markup_are_printed_as_they_are(tmp_path, sandbox):
    campaign, ids = hostile_campaign(tmp_path)
    env = env_for(sandbox, tmp_path / "l.db", COLUMNS="200")
    run_cli("execute", campaign, "--yes", env=env, check=0)
    listed = run_cli("creators", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    for handle in HOSTILE_HANDLES:
        assert handle in listed.stdout
    shown = run_cli("creators", "show", *ids, env=env, check=0).stdout
    assert "[link=https://evil.example]click me[/link]" in shown
    coloured = run_cli("creators", "list", env={**env, "FORCE_COLOR": "1"}, check=0).stdout
    assert "\x1b]8;" not in coloured  # no hyperlink escape: [link=...] is text
    assert "[/x]" in coloured


def test_control_characters_never_reach_the_terminal(tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 6)
    ledger = tmp_path / "l.db"
    env = env_for(sandbox, ledger, COLUMNS="200")
    run_cli("execute", campaign, "--yes", env=env, check=0)
    # what a creators file or the platform may have put in the ledger: handles and answers with escapes
    with sqlite3.connect(ledger) as conn:
        ids = [r[0] for r in conn.execute("SELECT DISTINCT creator_id FROM invitations ORDER BY 1")]
        for cid, handle in zip(ids, CONTROL):
            conn.execute("UPDATE creators SET handle = ? WHERE creator_id = ?", (handle, cid))
        conn.execute("UPDATE invitations SET message = ?, collaboration_id = ? WHERE creator_id = ?",
                     ("\x1b[2Jwiped", "\x1b]0;title\x07", ids[0]))
    outputs = [run_cli("creators", "list", env=env, check=0).stdout,
               run_cli("creators", "show", ids[0], env=env, check=0).stdout,
               run_cli("creators", "list", env={**env, "COLUMNS": "60"}, check=0).stdout]
    for out in outputs:
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", out), repr(out)
    assert "\\x1b[31mred" in outputs[0] and "\\u202e" in outputs[0]
    raw = run_cli("creators", "show", ids[0], "--json", env=env, check=0).stdout
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202e]", raw)
    doc = json.loads(raw)  # still the same data, escaped the JSON way
    assert doc["history"][ids[0]][0]["message"] == "\x1b[2Jwiped"


def test_error_messages_are_text_too(tmp_path):
    name = tmp_path / "[/x] [link=https://evil.example]y[/link].yaml"
    proc = run_cli("execute", name, "--yes")
    assert proc.returncode == 2, proc.stderr
    assert "[/x]" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("status", "--ledger", tmp_path / "[/x]" / "l.db")
    assert proc.returncode == 2 and "[/x]" in proc.stderr and "Traceback" not in proc.stderr


def test_the_last_resort_handler_prints_its_own_text_as_text(capsys):
    from trendio_cli.cli import command

    def broken(as_json: bool = False) -> None:
        raise RuntimeError("[/x] [link=https://evil.example]y[/link] \x1b[2J")

    with pytest.raises(typer.Exit) as exit_info:
        command("broken", register=False)(broken)()
    assert exit_info.value.exit_code == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: [/x] [link=https://evil.example]y[/link] \\x1b[2J" in err
    assert "\x1b" not in err


def test_no_password_of_a_postgresql_url_reaches_output(tmp_path):
    for url in ("postgresql://trendio:sek ret@127.0.0.1:1/x", "postgresql://trendio:hunter2@127.0.0.1:badport/x",
                "postgresql://trendio:hunter2@127.0.0.1/x?sslmode=bogus&password=hunter3"):
        for args in (("status",), ("status", "--json"), ("runs",), ("ledger", "export")):
            proc = run_cli(*args, "--ledger", url)
            assert proc.returncode != 0
            out = proc.stdout + proc.stderr
            for secret in ("sek ret", "sek", "hunter2", "hunter3", "trendio:"):
                assert secret not in out, (url, args, out)
            assert "127.0.0.1" in out  # the location is still named


def test_no_userinfo_of_a_base_url_reaches_output(tmp_path):
    campaign = write_campaign(tmp_path, 5)
    for args in (("execute", campaign, "--yes"), ("dry-run", campaign), ("sync", "--brand", "b"),
                 ("execute", campaign, "--yes", "--json")):
        for url in ("ftp://user:secret@host.example", "https://user:s3cr3tpw@api.example.com:99999",
                    "http://user:secret@api.example.com"):
            proc = run_cli(*args, "--base-url", url, env={"TRENDIO_LEDGER": str(tmp_path / "l.db")})
            assert proc.returncode == 2 or not url.startswith("ftp"), (args, url, proc.stderr)
            out = proc.stdout + proc.stderr
            assert "secret" not in out and "s3cr3tpw" not in out and "user:" not in out, out


def test_plan_files_reports_and_exports_are_written_0600(tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 10)
    env = env_for(sandbox, tmp_path / "l.db")
    run_cli("plan", campaign, "--out", tmp_path / "plan.json", env=env, check=0)
    run_cli("execute", tmp_path / "plan.json", "--yes", env=env, check=0)
    run_cli("report", campaign, "--html", tmp_path / "report.html", env=env, check=0)
    run_cli("ledger", "export", "--out", tmp_path / "export.jsonl", env=env, check=0)
    for name in ("plan.json", "report.html", "export.jsonl", "l.db"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # and an existing, readable file is replaced by a private one
    (tmp_path / "report.html").chmod(0o644)
    run_cli("report", campaign, "--html", tmp_path / "report.html", env=env, check=0)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o600


def test_the_report_keeps_its_data_block_parseable_whatever_the_names(tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 10)
    env = env_for(sandbox, tmp_path / "l.db")
    run_cli("execute", campaign, "--yes", env=env, check=0)
    with sqlite3.connect(tmp_path / "l.db") as conn:  # a ledger holds what it was given
        conn.execute("UPDATE invitations SET tier = '</script><b>x'")
    run_cli("report", campaign, "--html", tmp_path / "r.html", env=env, check=0)
    page = (tmp_path / "r.html").read_text()
    block = page.split('<script type="application/json" id="data">', 1)[1].split("</script>", 1)[0]
    data = json.loads(block)  # what a script in the page (or a reader) gets back with JSON.parse
    assert data["tiers"][0]["tier"] == "</script><b>x"
    assert "<b>x" not in page.replace("&lt;b&gt;x", "")


def _pg_up() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no server here
        return False


@pytest.fixture
def fresh_pg():
    if not _pg_up() and not os.environ.get("CI"):
        pytest.skip("no PostgreSQL server here (.ci/run starts one)")
    import psycopg

    name = "trendio_t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_views_of_a_fresh_postgresql_database_work(fresh_pg, tmp_path):
    for args in (("status",), ("runs",), ("quota",), ("dashboard", "ops"), ("dashboard", "merchant")):
        proc = run_cli(*args, "--json", "--ledger", fresh_pg)
        assert proc.returncode == 0, (args, proc.stderr)
        assert json_out(proc)["status"] == "success"
    import psycopg

    with psycopg.connect(fresh_pg) as conn:
        views = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.views "
                                            "WHERE table_schema = current_schema()")}
        constraints = {r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE contype = 'f'")}
    assert {"invitation_details", "requests_per_day"} <= views
    assert {"invitations_run_id_fkey", "plans_applied_run_id_fkey"} <= constraints


def test_a_missing_postgresql_database_is_a_missing_ledger(fresh_pg):
    missing = fresh_pg + "_not_there"
    proc = run_cli("status", "--ledger", missing)
    assert proc.returncode == 2 and "no ledger at postgresql://…@127.0.0.1" in proc.stderr
    assert "--ledger" in proc.stderr and "trendio:trendio" not in proc.stderr


def test_a_wrong_postgresql_password_is_not_printed(fresh_pg):
    wrong = fresh_pg.replace("trendio:trendio@", "trendio:wr0ngpassw0rd@")
    proc = run_cli("status", "--ledger", wrong)
    assert proc.returncode != 0
    assert "wr0ngpassw0rd" not in proc.stdout + proc.stderr
    assert "password authentication failed" in proc.stderr


def test_a_postgresql_ledger_runs_and_its_views_join(fresh_pg, tmp_path, sandbox):
    campaign = write_campaign(tmp_path, 10)
    write_creators_file(str(tmp_path / "creators.csv"), 10)
    run_cli("execute", campaign, "--yes", env=env_for(sandbox, Path("unused")) | {"TRENDIO_LEDGER": fresh_pg},
            check=0)
    import psycopg

    with psycopg.connect(fresh_pg) as conn:
        rows = conn.execute("SELECT handle, tier, run_command FROM invitation_details").fetchall()
        per_day = conn.execute("SELECT brand, requests FROM requests_per_day").fetchall()
    assert len(rows) == 30 and all(r[0] and r[1] and r[2] == "execute" for r in rows)
    assert per_day == [("testbrand", 3)]  # a create, the outreach figures and one eligibility check
