"""The command line: parse options, call one library function, turn its exceptions into a message and an
exit code (product.md). No business logic lives here."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text

from trendio_cli import __version__, render
from trendio_cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    BadInput,
    LedgerNotFound,
    ProblemsFound,
    TrendioError,
)
from trendio_cli.output import (
    clean,
    debug_enabled,
    emit_json,
    envelope,
    error_line,
    redact,
    say,
    shown_url,
    stdout,
    url_secrets,
    warning_line,
)

app = typer.Typer(
    name="trendio",
    help=(
        "Run TikTok Shop affiliate campaigns from YAML files, under the platform's rules.\n\n"
        "Typical day: `trendio validate campaign.yaml`, `trendio plan campaign.yaml`, "
        "`trendio dry-run campaign.yaml`, `trendio execute campaign.yaml`, later `trendio status`.\n\n"
        "Try it with no credentials: `trendio demo`."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a traceback must never print an access token
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)

F = TypeVar("F", bound=Callable[..., Any])

try:  # typer 0.2x carries its own copy of click
    from typer._click.exceptions import ClickException, UsageError
    from typer._click.globals import get_current_context
except ImportError:  # an older typer runs on click itself
    from click import ClickException, UsageError, get_current_context  # type: ignore[no-redef]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]
LedgerOpt = Annotated[
    str,
    typer.Option("--ledger", envvar="TRENDIO_LEDGER", show_default=True,
                 help="The ledger: a SQLite file, or a PostgreSQL URL (postgresql://user:password@host/db)."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url", envvar="TRENDIO_BASE_URL",
        help="API base URL (default: the real API host). Plain http:// only for loopback (the sandbox).",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trendio {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Root options."""


def option_origin(param: str, envvar: str) -> str:
    """Where an option's value came from, for messages: `from --ledger`, `from TRENDIO_LEDGER`, or the default."""
    ctx = get_current_context(silent=True)
    source = getattr(ctx.get_parameter_source(param), "name", "") if ctx is not None else ""
    if source == "COMMANDLINE":
        return f"from --{param.replace('_', '-')}"
    if source == "ENVIRONMENT":
        return f"from {envvar}"
    return f"the default; --{param.replace('_', '-')} or {envvar} name another"


def ledger_origin() -> str:
    return option_origin("ledger", "TRENDIO_LEDGER")


def ledger_exists(location: str | Path) -> bool:
    """A SQLite ledger file is there (a PostgreSQL ledger is looked for when it is opened)."""
    from trendio_cli.ledger import is_postgres_url

    path = Path(location)
    return is_postgres_url(location) or (path.is_file() and path.stat().st_size > 0)


def note_missing_ledger(location: str) -> None:
    """Plan and dry-run read a missing ledger as a new one; say so, as it may be the wrong location."""
    if not ledger_exists(location):
        say(f"note: no ledger at {clean(location)} ({ledger_origin()}): planned as for a new ledger")


def show_result(command: str, result: dict[str, Any], view: Callable[[dict[str, Any]], None], as_json: bool) -> None:
    """A command's result, as one JSON document (`--json`, exit code 0) or through its view."""
    if as_json:
        emit_json(envelope(command, 0, **result))
    else:
        view(result)


def say_if_new_ledger(location: str, existed: bool) -> None:
    if not existed and ledger_exists(location):
        say(f"new ledger at {clean(location)} ({ledger_origin()})")


def _fail(name: str, as_json: bool, code: int, label: str, message: str, hint: str | None,
          secrets: list[str], problems: list[str] | None = None) -> typer.Exit:
    """Print a failure as one line (and its hint), or the problems one per line, without secrets; with
    --json, the error envelope too. Returns the Exit to raise."""
    message, hint = redact(message, secrets), redact(hint, secrets) if hint else None
    if problems is not None:
        for p in problems:
            say(redact(clean(p), secrets))
    else:
        error_line(label, message, hint)
    if as_json:
        errors = ([{"message": redact(p, secrets)} for p in problems] if problems is not None
                  else [{"message": message, **({"hint": hint} if hint else {})}])
        emit_json(envelope(name, code, errors))
    return typer.Exit(code)


def command(name: str, register: bool = True) -> Callable[[F], F]:
    """Wrap a command: library errors become one line on stderr (and an error envelope with --json). Their
    text is data (printed as is, never as markup) and never carries a URL's user or password."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            as_json = bool(kwargs.get("as_json"))
            secrets = [s for key in ("ledger", "base_url") for s in url_secrets(kwargs.get(key))]
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except ProblemsFound as exc:
                raise _fail(name, as_json, exc.exit_code, "", "", None, secrets, exc.problems) from None
            except LedgerNotFound as exc:
                hint = ("is the location right? a new ledger is made only in a folder that exists"
                        if exc.folder_missing else "is the location right? `trendio init DIR` makes a new ledger")
                raise _fail(name, as_json, exc.exit_code, "error:", f"{exc.message} ({ledger_origin()})",
                            hint, secrets) from None
            except TrendioError as exc:
                raise _fail(name, as_json, exc.exit_code, "error:", exc.message, exc.hint, secrets) from None
            except KeyboardInterrupt:
                raise _fail(name, as_json, 130, "interrupted:", "stopped by Ctrl-C", None, secrets) from None
            except sqlite3.DatabaseError as exc:
                raise _fail(name, as_json, EXIT_FAILURE, "error:", f"the ledger cannot be read: {exc}",
                            "a damaged ledger can be moved aside (a new one is made) or repaired with "
                            "`sqlite3 LEDGER .recover`", secrets) from None
            except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only on request
                if debug_enabled():
                    traceback.print_exc()
                raise _fail(name, as_json, EXIT_FAILURE, "internal error:", f"{type(exc).__name__}: {exc}",
                            "TRENDIO_DEBUG=1 shows the traceback", secrets) from None

        return app.command(name)(wrapper) if register else wrapper  # type: ignore[return-value]

    return deco


# --- campaign files ---------------------------------------------------------------------------------
@command("validate")
def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="Campaign files (and saved plans) to check.")],
    as_json: JsonOpt = False,
) -> None:
    """Check campaign files and the creators files they name; every problem as `file:line:col: message`.

    Exit 2 if anything is wrong. Warnings (such as repeated creators, which are merged) do not fail.
    """
    from trendio_cli.commands.validate import validate_files

    result = validate_files(files)
    code = EXIT_BAD_INPUT if result["errors"] else 0
    for f in result["files"]:
        for line in f["rendered"]:
            say(clean(line))  # one problem, one line, at any width: editors and CI read file:line:col:
    if as_json:
        for f in result["files"]:
            f.pop("rendered")
        emit_json(envelope("validate", code, [p for f in result["files"] for p in f["problems"]
                                              if p["severity"] == "error"], files=result["files"],
                           warnings=result["warnings"]))
    else:
        for f in result["files"]:
            print(f"{clean(f['file'])}: {'ok' if f['ok'] else 'INVALID'}")
    raise typer.Exit(code)


@command("init")
def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Where to write the starter files.")] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing starter files (an existing ledger is kept).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a starter campaign (campaign.yaml), a sample creators file (creators.csv) and an empty ledger
    (trendio.db) in DIRECTORY: work from there, and every command finds that ledger by default."""
    from trendio_cli.commands.init import init_project

    result = init_project(directory, force=force)
    if as_json:
        emit_json(envelope("init", 0, **result))
        return
    for f in result["files"]:
        print(f"wrote {clean(f)}")
    print(f"{'kept the existing' if result['ledger_kept'] else 'created'} ledger {clean(result['ledger'])}")
    go = "" if directory.resolve() == Path.cwd().resolve() else f"cd {clean(directory)}, then "
    print(f"next: {go}trendio validate campaign.yaml")
    print("(there, trendio.db is the ledger every command uses by default)")
    if os.environ.get("TRENDIO_LEDGER"):
        say(f"note: TRENDIO_LEDGER is set ({clean(os.environ['TRENDIO_LEDGER'])}): commands use that ledger, "
            f"not {clean(result['ledger'])}, until it is unset")


@command("plan")
def plan_cmd(
    files: Annotated[list[Path], typer.Argument(help="A campaign file, several, or a folder of them.")],
    out: Annotated[Path | None, typer.Option("--out", help="Save the plan (JSON) for dry-run or execute.")] = None,
    on: Annotated[
        datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="Plan for this day (default today).")
    ] = None,
    explain: Annotated[
        str | None, typer.Option("--explain", metavar="CREATOR", help="Show the factors behind this creator's rank.")
    ] = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Decide who gets invited today, in which requests, at what cost in requests; changes nothing.

    Shows invitations by tier, the requests and quota before and after, how many candidates each rule
    left out, and when the rest can go. `--out plan.json` saves it with a fingerprint of the ledger:
    `trendio execute plan.json` refuses it if the ledger changed since.
    """
    from trendio_cli.commands.execute import expand_sources
    from trendio_cli.commands.plan import explain_creator, plan_campaign

    paths = expand_sources(files)
    note_missing_ledger(ledger)
    if len(paths) > 1:
        if out or explain:
            raise BadInput("--out and --explain take a single campaign file")
        plans = []
        for path in paths:
            plan, warnings = plan_campaign(path, str(ledger), on.date() if on else None)
            for w in warnings:
                say(clean(w))
            plans.append(plan.summary())
            if not as_json:
                render.plan_view(plans[-1])
        if as_json:
            emit_json(envelope("plan", 0, plans=plans))
        return
    file = paths[0]
    if explain:
        result = explain_creator(file, str(ledger), explain, on.date() if on else None)
        if as_json:
            emit_json(envelope("plan", 0, explain=result))
        else:
            render.explain_view(result)
        return
    plan, warnings = plan_campaign(file, str(ledger), on.date() if on else None)
    for w in warnings:
        say(clean(w))
    if out is not None:
        plan.save(out)
        say(f"plan saved to {clean(out)}")
    if as_json:
        emit_json(envelope("plan", 0, plan=plan.summary(), saved_to=str(out) if out else None))
    else:
        render.plan_view(plan.summary())


@command("dry-run")
def dry_run_cmd(
    sources: Annotated[list[Path], typer.Argument(help="Campaign files, saved plans, or folders of them.")],
    ledger: LedgerOpt = "trendio.db",
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build, batch and sign every request exactly as `execute` would, pace them on a simulated clock,
    and report; sends nothing and writes nothing. `--json` adds the requests (secrets redacted)."""
    from trendio_cli.commands.dryrun import dry_run
    from trendio_cli.commands.execute import expand_sources

    results = []
    paths = expand_sources(sources)
    note_missing_ledger(ledger)
    for source in paths:
        result = dry_run(source, str(ledger), base_url, include_requests=as_json)
        for w in result.pop("warnings"):
            say(clean(w))
        results.append(result)
        if not as_json:
            render.dry_run_view(result)
    if as_json:
        emit_json(envelope("dry-run", 0, **results[0]) if len(results) == 1 else envelope("dry-run", 0, runs=results))


@command("execute")
def execute_cmd(
    sources: Annotated[list[Path], typer.Argument(
        help="A campaign file (planned now), a saved plan, several, or a folder of campaign files.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    max_requests: Annotated[
        int | None, typer.Option("--max-requests", min=1, help="Send at most this many requests per campaign.")
    ] = None,
    ledger: LedgerOpt = "trendio.db",
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the invitations; resumable, and never breaks a rule.

    Paced under the rate limit (shared by every process on this ledger), every request counted against
    the brand's daily quota before it leaves, pairs marked pending before sending, and pairs left pending
    by a killed run reconciled with the platform before anything is resent. A stale saved plan is refused.

    Several files or a folder (`trendio execute campaigns/`): every campaign of every brand in one run;
    brands run side by side sharing the rate limit, campaigns of a brand go by `priority`; a brand
    another run holds is skipped, and a brand stopped by a quota or refused stops alone.

    Exit codes (the worst brand's): 0 done or nothing to do, 1 failure, 2 bad input, 3 partial,
    4 stopped by a quota (work remains), 5 refused (stale plan, brand held by another run, credentials
    rejected), 130 interrupted.
    """
    import sys

    from trendio_cli.commands.execute import execute, execute_many, expand_sources, preview
    from trendio_cli.errors import EXIT_QUOTA
    from trendio_cli.executor import ExecuteOptions

    paths = expand_sources(sources)
    options = ExecuteOptions(max_requests=max_requests)
    existed = ledger_exists(ledger)
    if not existed and not Path(ledger).parent.is_dir():
        raise LedgerNotFound(str(ledger), folder_missing=True)
    for line in where_it_sends(base_url, str(ledger), existed):
        say(line)
    if not yes:
        plans = [preview(p, str(ledger)) for p in paths]
        if not any(p.pairs for p in plans):
            for p in plans:
                say(f"{clean(p.brand)}/{clean(p.campaign)}: {render.nothing_to_send(p.skipped)}")
            # as a run would end: a quota that holds work back is exit 4, else there is nothing to do
            held = any(p.skipped.get(k) for p in plans
                       for k in ("deferred: daily request quota", "deferred: weekly outreach spent"))
            code = EXIT_QUOTA if held else 0
            if as_json:
                emit_json(envelope("execute", code, nothing_to_send=True, plans=[p.summary() for p in plans]))
            raise typer.Exit(code)
        if not sys.stdin.isatty():
            raise BadInput("not a terminal: pass --yes to execute without a confirmation prompt")
        what = ", ".join(f"{clean(p.brand)}/{clean(p.campaign)}" for p in plans)
        if not typer.confirm(f"Send {sum(p.pairs for p in plans)} invitations in "
                             f"{sum(p.requests['creates'] for p in plans)} requests for {what}?", err=True):
            raise typer.Exit(0)
    many = len(paths) > 1 or any(src.is_dir() for src in sources)
    with render.ExecuteProgress(enabled=not as_json or sys.stderr.isatty()) as progress:
        if many:
            result = execute_many(paths, ledger_path=str(ledger), base_url=base_url, options=options,
                                  on_progress=progress.update)
        else:
            result = execute(paths[0], ledger_path=str(ledger), base_url=base_url, options=options,
                             on_progress=progress.update)
    code = result.pop("exit_code")
    say_if_new_ledger(str(ledger), existed)
    if as_json:
        if many:
            errors = [{"brand": b["brand"], "message": b.get("note") or e.get("message"), **e}
                      for b in result["brands"] for r in b["campaigns"] for e in r["errors"]]
            errors += [{"brand": b["brand"], "message": b["note"]} for b in result["brands"]
                       if b.get("note") and not b["campaigns"]]
        else:
            errors = result.pop("errors")
            result.pop("status")
        emit_json(envelope("execute", code, errors, **result))
    elif many:
        render.execute_many_view(result)
    else:
        render.execute_view(result)
    runs = [r for b in result["brands"] for r in b["campaigns"]] if many else [result]
    for r in runs:
        for w in r.get("warnings") or ():
            warning_line(w)  # loud, and on stderr even with --json: it usually means a wrong ledger
    raise typer.Exit(code)


def where_it_sends(base_url: str | None, ledger: str, existed: bool) -> list[str]:
    """`sending to the sandbox at URL (from TRENDIO_BASE_URL)` and `ledger PATH (the default; ...)`: said
    before anything is asked or sent."""
    from trendio_cli.api.credentials import check_base_url, is_loopback_url
    from trendio_cli.api.endpoints import DEFAULT_BASE_URL
    from trendio_cli.ledger import shown_location

    url = check_base_url(base_url or DEFAULT_BASE_URL)
    if is_loopback_url(url):
        target = f"the sandbox at {shown_url(url)}"
    elif url == DEFAULT_BASE_URL.rstrip("/"):
        target = f"the TikTok Shop API at {url}"
    else:
        target = f"the API at {shown_url(url)}"
    new = "" if existed else "; new: this run makes it"
    return [f"sending to {target} ({option_origin('base_url', 'TRENDIO_BASE_URL')})",
            f"ledger {clean(shown_location(ledger))} ({ledger_origin()}{new})"]


@command("sync")
def sync_cmd(
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="A campaign file, or a campaign id: only its invitations.")
    ] = None,
    brand: Annotated[str | None, typer.Option("--brand", help="Only this brand (default: every brand).")] = None,
    ledger: LedgerOpt = "trendio.db",
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pull what creators did back into the ledger: invitations move to showcased, content or expired, and
    affiliate orders (GMV, commission) are recorded.

    The platform has no accept or decline: a creator who takes an invitation adds its products to their
    showcase, may post content, and sales follow as orders. Incremental: it pages the brand's collaborations
    (counts only), reads the detail only of those whose counts changed, stops paging once it has seen them
    all, and expires ended collaborations without a request; a second sync right after a first costs the
    search pages and nothing else. It spends only the reserve (`reserve_requests`), never the invitations'
    share. A creator who takes up none of `unresponsive_after` invitations within `answer_within_days` is
    flagged unresponsive and left out of plans for `cooldown_days` (each campaign's own lifecycle settings;
    defaults 1, 14 and 60).
    """
    from trendio_cli.commands.sync import sync

    existed = ledger_exists(ledger)
    if not existed and not (brand or campaign):
        # nothing to sync in a ledger that is not there: most likely the wrong location
        raise LedgerNotFound(str(ledger), folder_missing=not Path(ledger).parent.is_dir())
    result = sync(str(ledger), base_url, brand=brand, campaign=campaign)
    say_if_new_ledger(str(ledger), existed)
    code = result.pop("exit_code")
    if as_json:
        emit_json(envelope("sync", code, [e for b in result["brands"] for e in b["errors"]], **result))
    else:
        render.sync_view(result)
    raise typer.Exit(code)


# --- ledger views --------------------------------------------------------------------------------------
@command("status")
def status_cmd(
    brand: Annotated[str | None, typer.Option("--brand", help="Only this brand.")] = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Ledger summary: invitations by state per brand, requests today, pending pairs, locks, last runs."""
    from trendio_cli.commands.status import ledger_status

    result = ledger_status(str(ledger), brand)
    show_result("status", result, render.status_view, as_json)


@command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first.")] = 20,
    brand: Annotated[str | None, typer.Option("--brand", help="Only this brand.")] = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Run history with outcomes: who, what, when, counts, exit code."""
    from trendio_cli.commands.status import run_history

    result = run_history(str(ledger), limit, brand)
    show_result("runs", result, render.runs_view, as_json)


@command("quota")
def quota_cmd(
    brand: Annotated[str | None, typer.Option("--brand", help="Only this brand.")] = None,
    campaign: Annotated[
        Path | None, typer.Option("--campaign", help="Use this campaign file's limits (default: each brand's "
                                                     "most recently executed campaign's).")
    ] = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Requests used and left today, outreach used and left this week, and when each resets.

    Counted against each brand's limits as the ledger recorded them with its most recently executed
    campaign (the platform's defaults for a brand with none); the output names that campaign.
    """
    from trendio_cli.commands.quota import quota_view
    from trendio_cli.inputs import load_campaign_inputs

    spec = load_campaign_inputs(campaign).campaign if campaign else None
    result = quota_view(str(ledger), brand, spec.limits if spec else None, spec.campaign if spec else None)
    show_result("quota", result, render.quota_view, as_json)


@command("demo")
def demo_cmd(
    keep: Annotated[
        Path | None, typer.Option("--keep", help="Keep the demo's files and ledger in this directory.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The whole flow on a bundled campaign, against an in-process sandbox, in a throwaway ledger.

    Runs validate, plan, dry-run, execute and status, showing each step. No credentials, no network.
    """
    import time

    from trendio_cli.commands.demo import run_demo

    started = time.monotonic()

    progress = render.ExecuteProgress(enabled=not as_json)  # drawn from the first request of step 4 to its end

    def step(title: str, what: str) -> None:
        if not as_json:
            stdout.rule(Text(title, style="bold"))
            stdout.print(Text(what))

    def show(kind: str, result: dict[str, Any]) -> None:
        if as_json:
            return
        if kind == "validate":
            for f in result["files"]:
                stdout.print(Text(f"{clean(Path(f['file']).name)}: {'ok' if f['ok'] else 'INVALID'} "
                                  f"({len(f['problems'])} problem(s))"))
        elif kind == "plan":
            render.plan_view(result)
        elif kind == "dry-run":
            pace = result["pace"]
            stdout.print(Text(f"{result['requests_total']} signed requests for {result['pairs']} invitations, "
                              f"paced at {pace['requests_per_second']}/s: about {result['estimated_duration_s']:.1f} s "
                              f"plus network time; nothing sent, nothing written"))
        elif kind == "execute":
            progress.stop()
            render.execute_view(result)
        elif kind == "status":
            render.status_view(result)

    try:
        result = run_demo(step=step, show=show, on_progress=progress.update, keep=keep)
    finally:
        progress.stop()
    code = int(result["execute"]["exit_code"])
    if as_json:
        emit_json(envelope("demo", code, **result))
    else:
        s, knobs = result["sandbox_stats"], result["sandbox_settings"]
        stdout.rule(Text("done", style="bold"))
        if s["faults"] or s["lost_responses"]:
            faults = (f"It injected {plural(s['faults'], 'transient fault')} and cut off "
                      f"{plural(s['lost_responses'], 'answer')}; trendio retried and reconciled them.")
        else:
            faults = (f"None of its faults ({knobs['fault_rate']:.0%} of requests) or cut-off answers "
                      f"({knobs['lost_rate']:.0%} of creates) struck in these {s['requests']} requests.")
        per = {"api": "one API", "shop": "the shop", "app": "the app"}[knobs["rate_scope"]]
        busiest = f"at most {s['max_shop_requests_in_window']} in any one second"
        if knobs["rate_scope"] != "shop":
            busiest += f", {s['max_requests_in_window']} to {per}, where its limit of {knobs['rate_limit']} counts"
        stdout.print(Text(
            f"The sandbox saw {s['requests']} requests ({s['http_429']} answered 429; {busiest}), "
            f"invited {s['invited_pairs']} pairs and saw "
            f"{plural(s['duplicate_attempts'], 'duplicate attempt')}. {faults} "
            f"{time.monotonic() - started:.1f} s in all."))
        stdout.print(Text("Next: `trendio init my-campaign` writes a starter campaign of your own."))
    raise typer.Exit(code)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


creators_app = typer.Typer(
    help="Creators with their history and flags; flag, unflag or block one by hand.", no_args_is_help=True,
    rich_markup_mode="markdown")
app.add_typer(creators_app, name="creators")
BrandOpt = Annotated[str | None, typer.Option("--brand", help="The brand (default: the ledger's only brand).")]


def sub_command(group: typer.Typer, group_name: str, name: str) -> Callable[[F], F]:
    """A command of a group (`trendio creators list`), with the same error handling as the others."""
    def deco(fn: F) -> F:
        wrapped = command(f"{group_name} {name}", register=False)(fn)
        return group.command(name)(wrapped)  # type: ignore[return-value]
    return deco


@sub_command(creators_app, "creators", "list")
def creators_list_cmd(
    flag: Annotated[str | None, typer.Option("--flag", help="Only creators with this flag in force.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, most recently invited first.")] = 50,
    brand: BrandOpt = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """List creators: invitations, answers, the flag in force (blocked, unresponsive, inactive, ineligible)."""
    from trendio_cli.commands.creators import list_creators

    result = list_creators(str(ledger), brand, flag=flag, creator_ids=None, limit=limit)
    show_result("creators list", result, render.creators_view, as_json)


@sub_command(creators_app, "creators", "show")
def creators_show_cmd(
    creator_ids: Annotated[list[str], typer.Argument(help="Creator ids.")],
    brand: BrandOpt = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """One creator's whole history: every invitation, its state and answer, and the flag in force."""
    from trendio_cli.commands.creators import list_creators

    result = list_creators(str(ledger), brand, flag=None, creator_ids=creator_ids, limit=len(creator_ids))
    show_result("creators show", result, render.creators_view, as_json)


@sub_command(creators_app, "creators", "flag")
def creators_flag_cmd(
    creator_ids: Annotated[list[str], typer.Argument(help="Creator ids.")],
    as_: Annotated[str, typer.Option("--as", help="blocked, unresponsive, inactive or ineligible.")] = "blocked",
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="For this many days (default: until unflagged).")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
    brand: BrandOpt = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Flag creators by hand: plans leave them out while the flag is in force."""
    from trendio_cli.commands.creators import set_flag

    result = set_flag(str(ledger), brand, creator_ids, as_, days=days, reason=reason)
    show_result("creators flag", result, render.creators_view, as_json)


@sub_command(creators_app, "creators", "block")
def creators_block_cmd(
    creator_ids: Annotated[list[str], typer.Argument(help="Creator ids.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
    brand: BrandOpt = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Block creators for good: never planned again for this brand (until unflagged)."""
    from trendio_cli.commands.creators import set_flag

    result = set_flag(str(ledger), brand, creator_ids, "blocked", reason=reason)
    show_result("creators block", result, render.creators_view, as_json)


@sub_command(creators_app, "creators", "unflag")
def creators_unflag_cmd(
    creator_ids: Annotated[list[str], typer.Argument(help="Creator ids.")],
    brand: BrandOpt = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Remove any flag: the creators may be planned again."""
    from trendio_cli.commands.creators import set_flag

    result = set_flag(str(ledger), brand, creator_ids, None)
    show_result("creators unflag", result, render.creators_view, as_json)


@sub_command(creators_app, "creators", "discover")
def creators_discover_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="The creators file to write or extend (CSV, or JSONL "
                                      "by its extension).")],
    campaign: Annotated[Path | None, typer.Option("--campaign", help="Take the brand, its limits and the "
                                                  "`discover:` filters from this campaign file.")] = None,
    brand: Annotated[str | None, typer.Option("--brand", help="The brand whose credentials and quota the "
                                              "search spends (default: the campaign's).")] = None,
    keyword: Annotated[str | None, typer.Option("--keyword", help="Match usernames and nicknames.")] = None,
    min_followers: Annotated[int | None, typer.Option("--min-followers", min=0)] = None,
    max_followers: Annotated[int | None, typer.Option("--max-followers", min=0)] = None,
    gmv_range: Annotated[list[str] | None, typer.Option(
        "--gmv-range", help="GMV_RANGE_0_100, GMV_RANGE_100_1000, GMV_RANGE_1000_10000 or "
                            "GMV_RANGE_10000_AND_ABOVE (repeat for several).")] = None,
    units_sold_range: Annotated[list[str] | None, typer.Option(
        "--units-sold-range", help="UNITS_SOLD_RANGE_0_10, _10_100, _100_1000 or _1000_AND_ABOVE (repeat for "
                                   "several).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Add at most this many creators "
                                              "(default 1000, or the campaign's).")] = None,
    max_requests: Annotated[int | None, typer.Option("--max-requests", min=1,
                                                     help="Send at most this many search requests.")] = None,
    page_size: Annotated[int, typer.Option("--page-size", help="12 or 20 creators a page.")] = 20,
    ledger: LedgerOpt = "trendio.db",
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the creator marketplace and write (or extend) a creators file with open ids and attributes.

    Filters come from the flags, or from the campaign's `discover:` section (flags win). Every page is one
    request counted against the brand's daily quota, outside the reserve kept for syncs, and never more
    than `--max-requests`. Creators already in the file are not added twice; its rows are kept.
    """
    from trendio_cli.campaign import load_campaign
    from trendio_cli.commands.discover import discover, discover_filters

    # the campaign alone: its creators file may not exist yet, or be empty (discovery is how one starts)
    spec = load_campaign(campaign) if campaign else None
    brand = brand or (spec.brand if spec else None)
    if not brand:
        raise BadInput("say whose quota the search spends: --brand B or --campaign FILE")
    filters = discover_filters(spec, keyword=keyword, min_followers=min_followers, max_followers=max_followers,
                               gmv_ranges=gmv_range, units_sold_ranges=units_sold_range, limit=limit)
    with render.DiscoverProgress(enabled=not as_json) as progress:
        result = discover(out, brand=brand, filters=filters, ledger_path=str(ledger), base_url=base_url,
                          limits=spec.limits if spec else None, max_requests=max_requests, page_size=page_size,
                          on_progress=progress.update)
    code = result.pop("exit_code")
    if as_json:
        emit_json(envelope("creators discover", code, result.pop("errors"), **result))
    else:
        render.discover_view(result)
    raise typer.Exit(code)


@command("dashboard")
def dashboard_cmd(
    which: Annotated[str, typer.Argument(help="ops (API usage, health, runs) or merchant (campaign performance).")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep redrawing until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="Seconds between redraws.")] = 2.0,
    brand: Annotated[str | None, typer.Option("--brand", help="Only this brand (merchant).")] = None,
    campaign: Annotated[str | None, typer.Option(
        "--campaign", help="Only this campaign (merchant): a campaign file (its tiers in its order) or id.")] = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Terminal dashboards drawn from the ledger alone, so they can watch a run in another terminal.

    `ops`: requests used and left today per brand and endpoint, requests per second over the last
    minutes, errors by class and code, retries, pending pairs, who holds each brand's lock, the last runs.
    `merchant`: what the client pays for, per campaign and tier: invitations, showcases, content, orders,
    GMV, commission, GMV per invitation, showcase rate; then the top creators and products by GMV.
    """
    import time

    from rich.live import Live

    from trendio_cli import dashboard, views
    from trendio_cli.ledger import Ledger

    if which not in ("ops", "merchant"):
        raise BadInput("dashboard must be ops or merchant")
    tier_order: list[str] = []
    if campaign and Path(campaign).is_file():
        from trendio_cli.inputs import load_campaign_inputs

        spec = load_campaign_inputs(Path(campaign)).campaign
        campaign, brand, tier_order = spec.campaign, spec.brand, [t.name for t in spec.tiers]

    def snapshot() -> dict[str, Any]:
        with Ledger.open(str(ledger), readonly=True, migrate=True, must_exist=True) as led:
            if which == "ops":
                return views.ops_snapshot(led)
            return views.merchant_snapshot(led, brand, campaign, tier_order)

    def draw(snap: dict[str, Any]) -> Any:
        width = stdout.width
        return dashboard.ops_view(snap, width) if which == "ops" else dashboard.merchant_view(snap, width)

    if as_json:
        emit_json(envelope("dashboard", 0, dashboard=which, **snapshot()))
        return
    if not watch:
        stdout.print(draw(snapshot()))
        return
    try:
        with Live(draw(snapshot()), console=stdout, refresh_per_second=4, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(draw(snapshot()))
    except KeyboardInterrupt:
        pass


@command("report")
def report_cmd(
    campaign: Annotated[str, typer.Argument(help="A campaign file or a campaign id.")],
    html_out: Annotated[Path, typer.Option("--html", help="Write the report to this HTML file.")],
    brand: Annotated[str | None, typer.Option("--brand", help="The brand (with a campaign id).")] = None,
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """A merchant report in one self-contained HTML file (no network needed to view it): what the client pays
    for: invitations, showcases, content and orders, GMV and commission, per day over the period covered and
    per tier, and the top creators and products by GMV. (API usage is the ops dashboard's.)"""
    from trendio_cli import report, views
    from trendio_cli.ledger import Ledger
    from trendio_cli.output import write_private

    campaign_id = campaign
    tier_order: list[str] = []
    if Path(campaign).is_file():
        from trendio_cli.inputs import load_campaign_inputs

        spec = load_campaign_inputs(Path(campaign)).campaign
        campaign_id, brand = spec.campaign, spec.brand
        tier_order = [t.name for t in spec.tiers]
    with Ledger.open(str(ledger), readonly=True, migrate=True, must_exist=True) as led:
        data = views.report_data(led, brand, campaign_id, tier_order)
    write_private(html_out, report.render_report(data))  # 0600, as the ledger it shows
    if as_json:
        emit_json(envelope("report", 0, html=str(html_out), totals=data["totals"], days=len(data["days"]),
                           period=data["period"]))
    else:
        say(f"report written to {clean(html_out)}")


ledger_app = typer.Typer(help="Move a ledger: export it as JSON lines, import it into a new ledger.",
                         no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(ledger_app, name="ledger")


@sub_command(ledger_app, "ledger", "export")
def ledger_export_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here (default: stdout).")] = None,
    ledger: LedgerOpt = "trendio.db",
) -> None:
    """Every row of the ledger as JSON lines (the first line says what it is), to move it without loss."""
    from trendio_cli.commands.ledger_io import export_ledger

    counts = export_ledger(str(ledger), out)
    if out:
        say(f"exported {sum(counts.values())} rows to {clean(out)}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items()))


@sub_command(ledger_app, "ledger", "import")
def ledger_import_cmd(
    source: Annotated[Path, typer.Argument(help="A file written by `trendio ledger export`.")],
    ledger: LedgerOpt = "trendio.db",
    as_json: JsonOpt = False,
) -> None:
    """Load an export into a new (empty) ledger, all rows or none."""
    from trendio_cli.commands.ledger_io import import_ledger
    from trendio_cli.ledger import shown_location

    counts = import_ledger(str(ledger), source)
    if as_json:
        emit_json(envelope("ledger import", 0, rows=counts))
    else:
        say(f"imported {sum(counts.values())} rows into {clean(shown_location(ledger))}: "
            + ", ".join(f"{k} {v}" for k, v in counts.items()))


auth_app = typer.Typer(help="The shops the credentials reach, and refreshing a brand's access token.",
                       no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(auth_app, name="auth")


@sub_command(auth_app, "auth", "shops")
def auth_shops_cmd(
    brand: Annotated[str | None, typer.Option("--brand", help="Use this brand's credentials "
                                              "(TRENDIO_<BRAND>_*); default the generic TRENDIO_* ones.")] = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the shops the app and access token reach (name, region, seller type, code, cipher).

    The cipher is what `TRENDIO_SHOP_CIPHER` (or `TRENDIO_<BRAND>_SHOP_CIPHER`) needs; this call itself
    needs no cipher. One request, signed like the others.
    """
    from trendio_cli.commands.auth import list_shops

    result = list_shops(base_url, brand)
    show_result("auth shops", result, render.shops_view, as_json)


@sub_command(auth_app, "auth", "refresh")
def auth_refresh_cmd(
    brand: Annotated[str | None, typer.Option("--brand", help="Refresh this brand's token (TRENDIO_<BRAND>_*).")
                     ] = None,
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Refresh a brand's access token now and keep the new pair in the token store.

    Access tokens last 7 days; `execute` and `sync` refresh by themselves when the platform says the token
    has expired. The refresh token rotates at every refresh: the new pair is written to the token store
    (one file, mode 0600, in the user's config directory; `TRENDIO_HOME` moves it) before it is used, and
    wins over the environment's token from then on. The auth host is `TRENDIO_AUTH_URL` (default the real
    one; the sandbox's own URL when the base URL is the sandbox). Tokens are never printed.
    """
    from trendio_cli.commands.auth import refresh_token

    result = refresh_token(base_url, brand)
    show_result("auth refresh", result, render.refresh_view, as_json)


# --- sandbox ----------------------------------------------------------------------------------------
@command("sandbox")
def sandbox_cmd(
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 8787,
    latency_ms: Annotated[float, typer.Option(help="Fixed latency added to every answer, in ms.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random +/- jitter around the latency, in ms.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Share of requests answered with a transient fault (0-1).")] = 0.0,
    lost_rate: Annotated[
        float, typer.Option(help="Share of creates that succeed but whose answer is cut off (0-1).")
    ] = 0.0,
    overload_rate: Annotated[float, typer.Option(help="Share of requests answered HTTP 503 (0-1).")] = 0.0,
    overload_envelope: Annotated[
        bool, typer.Option(help="503s carry a JSON envelope (else an empty body).")
    ] = False,
    ineligible_permille: Annotated[int, typer.Option(help="Creators per thousand the platform refuses.")] = 10,
    ineligible_mode: Annotated[
        str, typer.Option(help="named: a refusal lists the creators; unnamed: it does not.")
    ] = "named",
    conflict_code: Annotated[
        int, typer.Option(help="Code of an answer listing conflicts (nothing created): 0 or 16024022.")
    ] = 0,
    rate_limit: Annotated[int, typer.Option(help="Requests per second before HTTP 429.")] = 50,
    rate_scope: Annotated[
        str, typer.Option(help="Scope of the rate limit: api (per app, shop and API), shop or app.")
    ] = "api",
    retry_after: Annotated[bool, typer.Option(help="Send Retry-After with 429s.")] = True,
    rate_limit_envelope: Annotated[
        bool, typer.Option(help="429s carry a JSON envelope (36009002; else an empty body).")
    ] = True,
    daily_quota: Annotated[int, typer.Option(help="Requests per shop per UTC day.")] = 10_000,
    weekly_outreach: Annotated[int, typer.Option(help="New creators contacted per shop per week.")] = 5_000,
    token_lifetime_days: Annotated[
        float, typer.Option(help="Access tokens expire this many simulated days after issue (0: never).")
    ] = 7.0,
    token_expires_after: Annotated[
        int, typer.Option(help="Access tokens expire after this many requests each (0: never).")
    ] = 0,
    disable: Annotated[
        list[str] | None,
        typer.Option(help="Switch an endpoint off (check_conflicts, outreach_quota, check_eligibility, "
                          "create_collaboration/202405, ...); repeatable."),
    ] = None,
    disabled_answer: Annotated[
        str, typer.Option(help="What a switched-off endpoint answers: path (36009009) or version (36009014).")
    ] = "path",
    products: Annotated[
        str | None, typer.Option(help="Comma-separated product ids the shop owns (others: 16024008).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the creator marketplace and of the faults.")] = 7,
    marketplace_size: Annotated[int, typer.Option(help="Creators marketplace search ranges over.")] = 5_000,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other setting, as NAME=JSON (e.g. --set 'sensitive_words=[\"spam\"]'); "
                                   "repeatable. The settings are listed in trendio_cli/sandbox/state.py."),
    ] = None,
    log: Annotated[Path | None, typer.Option(help="Append a JSONL line per request to this file.")] = None,
) -> None:
    """Serve a local stand-in for the TikTok Shop affiliate API on 127.0.0.1 that behaves as its reference says.

    Endpoints: the 202508 create (and the 202405 one with plain ids), collaboration search (counts only) and
    detail, 202410 affiliate orders, 202508 marketplace search and creator performance, authorized shops,
    token refresh (GET /api/v2/token/refresh, on the same port), and the 2026 conflicts check, outreach quota
    and eligibility check. Creators never decline: over simulated time some add the products to their
    showcase, post content, and orders follow.

    It accepts the credentials in TRENDIO_APP_KEY, TRENDIO_APP_SECRET, TRENDIO_ACCESS_TOKEN,
    TRENDIO_REFRESH_TOKEN and TRENDIO_SHOP_CIPHER (and the per-brand `TRENDIO_<BRAND>_*` forms), and always the
    documented sandbox defaults (app key `sandbox-app-key`, secret `sandbox-app-secret`, token
    `sandbox-access-token`, refresh token `sandbox-refresh-token`, shop cipher `sandbox-shop-cipher`).
    Creator Open IDs come from `trendio_cli.sandbox.marketplace.write_creators_file`.

    Point trendio at it with `TRENDIO_BASE_URL=http://127.0.0.1:PORT` and `TRENDIO_AUTH_URL` likewise. Admin
    routes (not signed, not counted): GET /_sandbox/stats, GET /_sandbox/pairs, GET|POST /_sandbox/settings,
    POST /_sandbox/advance {"days": n, "seconds": s}, POST /_sandbox/reset, GET|POST|DELETE /_sandbox/script
    {"endpoint": name, "answers": [...]}, POST /_sandbox/expire_tokens, GET /_sandbox/creators/{id}.
    """
    import json

    from trendio_cli.errors import BadInput
    from trendio_cli.sandbox.server import serve_forever
    from trendio_cli.sandbox.state import SandboxSettings

    if not 1 <= port <= 65535:
        raise BadInput(f"--port {port}: a port is a number from 1 to 65535")
    for label, value in (("--fault-rate", fault_rate), ("--lost-rate", lost_rate), ("--overload-rate", overload_rate)):
        if not 0 <= value <= 1:
            raise BadInput(f"{label} must be between 0 and 1")
    settings = SandboxSettings()
    changes: dict[str, Any] = dict(
        rate_limit=rate_limit, rate_scope=rate_scope, retry_after=retry_after, rate_limit_envelope=rate_limit_envelope,
        daily_quota=daily_quota, weekly_outreach=weekly_outreach, latency_ms=latency_ms, jitter_ms=jitter_ms,
        fault_rate=fault_rate, lost_rate=lost_rate, overload_rate=overload_rate, overload_envelope=overload_envelope,
        ineligible_permille=ineligible_permille, ineligible_mode=ineligible_mode, conflict_code=conflict_code,
        token_lifetime_s=token_lifetime_days * 86_400, token_expires_after=token_expires_after,
        disabled_endpoints=list(disable or []), disabled_answer=disabled_answer, seed=seed,
        marketplace_size=marketplace_size,
        products=[p.strip() for p in products.split(",") if p.strip()] if products else [],
    )
    for item in set_ or []:
        name, sep, raw = item.partition("=")
        if not sep:
            raise BadInput(f"--set {item!r}: write NAME=JSON")
        try:
            changes[name.strip()] = json.loads(raw)
        except ValueError:
            changes[name.strip()] = raw  # a bare word is a string
    try:
        settings.update(changes)
    except KeyError as exc:
        raise BadInput(f"unknown sandbox setting {exc}") from None
    except ValueError as exc:
        raise BadInput(f"bad sandbox setting: {exc}") from None
    _check_port_free(port)
    say(f"trendio sandbox on http://127.0.0.1:{port}  (Ctrl-C to stop)")
    serve_forever(settings, port=port, log_path=str(log) if log else None)


def _check_port_free(port: int) -> None:
    """A port another server holds is bad input, said in one line (the server would log its own and exit 3)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BadInput(f"--port {port}: 127.0.0.1:{port} cannot be served ({exc.strerror or exc}); "
                           f"another sandbox may be running there: pick another --port") from None


def main() -> None:
    if "--json" in sys.argv[1:]:
        sys.exit(_main_json(sys.argv[1:]))
    try:
        app()
    except SystemExit as exc:
        code = exc.code
        # Click reports usage errors with exit 2 already; keep every other code as the command chose.
        sys.exit(code if isinstance(code, int) else (EXIT_BAD_INPUT if code else 0))


def _main_json(args: list[str]) -> int:
    """With --json, a usage error too is one JSON document on stdout (`status: error`, exit 2), and one line
    on stderr."""
    try:
        code = app(args=args, standalone_mode=False)
    except UsageError as exc:
        names, ctx = [], exc.ctx
        while ctx is not None and ctx.parent is not None:  # the command's own name, without the program's
            names.append(ctx.info_name or "")
            ctx = ctx.parent
        name = " ".join(reversed(names))
        error_line("usage error:", exc.format_message(), f"`trendio {name} --help`".replace("  ", " "))
        emit_json(envelope(name or "trendio", EXIT_BAD_INPUT, [{"message": exc.format_message()}]))
        return EXIT_BAD_INPUT
    except ClickException as exc:
        error_line("error:", exc.format_message())
        emit_json(envelope(args[0] if args else "trendio", exc.exit_code, [{"message": exc.format_message()}]))
        return exc.exit_code
    except typer.Abort:
        error_line("interrupted:", "stopped before it began")
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
