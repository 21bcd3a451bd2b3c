"""The command line itself: every command documented, --version, --json gives one document."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from helpers import REPO, run_cli
from trendio_cli import __version__
from trendio_cli.cli import app
from trendio_cli.ledger import Ledger

COMMANDS = ["validate", "init", "plan", "dry-run", "execute", "sync", "status", "runs", "quota", "demo", "sandbox",
            "creators", "dashboard", "report", "ledger"]
runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"trendio {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_that_teaches(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", result.stdout)
    assert len(text) > 300
    assert "--help" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_in_the_readme(command):
    assert f"trendio {command}" in (REPO / "README.md").read_text()


def test_root_help_lists_the_commands():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    for command in COMMANDS:
        assert command in result.stdout


def test_json_output_is_one_document_and_nothing_else(tmp_path):
    proc = run_cli("init", tmp_path / "proj", "--json", check=0)
    doc = json.loads(proc.stdout)
    assert doc["status"] == "success" and doc["version"] == 1 and doc["errors"] == []
    for args in (("status", "--json"), ("runs", "--json"), ("quota", "--json"),
                 ("plan", tmp_path / "proj" / "campaign.yaml", "--json")):
        proc = run_cli(*args, env={"TRENDIO_LEDGER": str(tmp_path / "proj" / "trendio.db"), "NO_COLOR": "1"},
                       check=0)
        doc = json.loads(proc.stdout)
        assert doc["command"] == args[0] and doc["exit_code"] == 0


def test_init_writes_a_campaign_that_validates_and_refuses_to_overwrite(tmp_path):
    run_cli("init", tmp_path / "p", check=0)
    assert (tmp_path / "p" / "trendio.db").exists()
    assert run_cli("validate", tmp_path / "p" / "campaign.yaml").returncode == 0
    again = run_cli("init", tmp_path / "p")
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_force_keeps_the_ledger_and_says_so(tmp_path):
    assert f"created ledger {tmp_path / 'p' / 'trendio.db'}" in run_cli("init", tmp_path / "p", check=0).stdout
    with Ledger.open(tmp_path / "p" / "trendio.db") as ledger:
        ledger.start_run(brand="mybrand", campaign="my-first-campaign", command="execute")
    forced = run_cli("init", tmp_path / "p", "--force", check=0).stdout
    assert f"kept the existing ledger {tmp_path / 'p' / 'trendio.db'}" in forced and "created" not in forced
    assert json.loads(run_cli("init", tmp_path / "p", "--force", "--json", check=0).stdout)["ledger_kept"] is True
    with Ledger.open(tmp_path / "p" / "trendio.db") as ledger:
        assert ledger.brands() == ["mybrand"]


def test_sync_help_says_what_sync_does_with_the_lifecycle_defaults():
    from trendio_cli.campaign import Lifecycle

    words = " ".join(run_cli("sync", "--help", env={"COLUMNS": "200"}, check=0).stdout.split())
    assert "invitations move to showcased, content or expired" in words and "affiliate orders" in words
    assert "accepted" not in words and "declined" not in words
    d = Lifecycle()
    assert f"defaults {d.unresponsive_after}, {d.answer_within_days} and {d.cooldown_days})" in words


def test_execute_without_a_terminal_needs_yes(tmp_path):
    run_cli("init", tmp_path / "p", check=0)
    proc = run_cli("execute", tmp_path / "p" / "campaign.yaml", env={"TRENDIO_BASE_URL": "http://127.0.0.1:9",
                                                                     "TRENDIO_LEDGER": str(tmp_path / "l.db")})
    assert proc.returncode == 2 and "--yes" in proc.stderr


def test_missing_credentials_for_the_real_api_is_a_clear_error(tmp_path):
    run_cli("init", tmp_path / "p", check=0)
    proc = run_cli("execute", tmp_path / "p" / "campaign.yaml", "--yes",
                   env={"TRENDIO_LEDGER": str(tmp_path / "l.db")})
    assert proc.returncode == 2
    assert "missing credentials" in proc.stderr and "TRENDIO_APP_KEY" in proc.stderr
    assert not (tmp_path / "l.db").exists()


def test_plain_http_to_a_remote_host_is_refused(tmp_path):
    run_cli("init", tmp_path / "p", check=0)
    proc = run_cli("execute", tmp_path / "p" / "campaign.yaml", "--yes", "--base-url", "http://api.example.com",
                   env={"TRENDIO_LEDGER": str(tmp_path / "l.db")})
    assert proc.returncode == 2 and "refusing plain http://" in proc.stderr
