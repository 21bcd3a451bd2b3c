"""The command line: parse options, call one library function, turn its exceptions into a message and an
exit code (product.md). No business logic lives here."""

from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

from trendio_cli import __version__
from trendio_cli.errors import EXIT_BAD_INPUT, EXIT_FAILURE, ProblemsFound, TrendioError
from trendio_cli.output import debug_enabled, emit_json, envelope, stderr

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

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]
LedgerOpt = Annotated[
    Path,
    typer.Option("--ledger", envvar="TRENDIO_LEDGER", help="The SQLite ledger file.", show_default=True),
]
BaseUrlOpt = Annotated[
    Optional[str],
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


def command(name: str) -> Callable[[F], F]:
    """Wrap a command: library errors become one line on stderr (and an error envelope with --json)."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            as_json = bool(kwargs.get("as_json"))
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except ProblemsFound as exc:
                for p in exc.problems:
                    stderr.print(p, markup=False)
                if as_json:
                    emit_json(envelope(name, exc.exit_code, [{"message": p} for p in exc.problems]))
                raise typer.Exit(exc.exit_code) from None
            except TrendioError as exc:
                stderr.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False)
                if exc.hint:
                    stderr.print(f"  hint: {exc.hint}", markup=False)
                if as_json:
                    emit_json(envelope(name, exc.exit_code, [{"message": exc.message, "hint": exc.hint}]))
                raise typer.Exit(exc.exit_code) from None
            except KeyboardInterrupt:
                stderr.print("interrupted")
                raise typer.Exit(130) from None
            except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only on request
                if debug_enabled():
                    traceback.print_exc()
                stderr.print(
                    f"[bold red]internal error:[/] {type(exc).__name__}: {exc}  (TRENDIO_DEBUG=1 shows the traceback)",
                    markup=True,
                )
                if as_json:
                    emit_json(envelope(name, EXIT_FAILURE, [{"message": f"{type(exc).__name__}: {exc}"}]))
                raise typer.Exit(EXIT_FAILURE) from None

        return app.command(name)(wrapper)  # type: ignore[return-value]

    return deco


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
    ineligible_permille: Annotated[int, typer.Option(help="Creators per thousand the platform refuses.")] = 10,
    rate_limit: Annotated[int, typer.Option(help="Requests per second before HTTP 429.")] = 50,
    rate_scope: Annotated[str, typer.Option(help="Scope of the rate limit: app or shop.")] = "app",
    daily_quota: Annotated[int, typer.Option(help="Requests per shop per UTC day.")] = 10_000,
    weekly_outreach: Annotated[int, typer.Option(help="New creators contacted per shop per week.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed of the creator marketplace and of the faults.")] = 7,
    log: Annotated[Optional[Path], typer.Option(help="Append a JSONL line per request to this file.")] = None,
) -> None:
    """Serve a local stand-in for the TikTok Shop affiliate API on 127.0.0.1 that enforces its rules.

    It accepts the credentials in TRENDIO_APP_KEY, TRENDIO_APP_SECRET, TRENDIO_ACCESS_TOKEN and
    TRENDIO_SHOP_CIPHER (and the per-brand TRENDIO_<BRAND>_* forms), and always the documented sandbox
    defaults (app key `sandbox-app-key`, secret `sandbox-app-secret`, token `sandbox-access-token`,
    shop cipher `sandbox-shop-cipher`).

    Point trendio at it with `TRENDIO_BASE_URL=http://127.0.0.1:PORT`. Admin routes (not signed, not
    counted): GET /_sandbox/stats, GET /_sandbox/pairs, GET|POST /_sandbox/settings,
    POST /_sandbox/advance {"days": n}, POST /_sandbox/reset.
    """
    from trendio_cli.errors import BadInput
    from trendio_cli.sandbox.server import serve_forever
    from trendio_cli.sandbox.state import SandboxSettings

    if rate_scope not in ("app", "shop"):
        raise BadInput("--rate-scope must be app or shop")
    for label, value in (("--fault-rate", fault_rate), ("--lost-rate", lost_rate)):
        if not 0 <= value <= 1:
            raise BadInput(f"{label} must be between 0 and 1")
    settings = SandboxSettings(
        rate_limit=rate_limit, rate_scope=rate_scope, daily_quota=daily_quota, weekly_outreach=weekly_outreach,
        latency_ms=latency_ms, jitter_ms=jitter_ms, fault_rate=fault_rate, lost_rate=lost_rate,
        ineligible_permille=ineligible_permille, seed=seed,
    )
    stderr.print(f"trendio sandbox on http://127.0.0.1:{port}  (Ctrl-C to stop)")
    serve_forever(settings, port=port, log_path=str(log) if log else None)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        code = exc.code
        # Click reports usage errors with exit 2 already; keep every other code as the command chose.
        sys.exit(code if isinstance(code, int) else (EXIT_BAD_INPUT if code else 0))


if __name__ == "__main__":
    main()
