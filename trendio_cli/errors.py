"""Typed exceptions of the library, each carrying the exit code the CLI maps it to (see product.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3
EXIT_QUOTA = 4
EXIT_REFUSED = 5


class TrendioError(Exception):
    """Base of every error a user can cause or meet; the CLI prints it as one line."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(TrendioError):
    """A campaign, creators or plan file, or an option, is wrong."""

    exit_code = EXIT_BAD_INPUT


class ProblemsFound(BadInput):
    """Validation found problems; each is already formatted as `file:line:col: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) found")
        self.problems = problems


class ConfigError(BadInput):
    """Missing credentials, a refused base URL, or another configuration mistake."""


class Refused(TrendioError):
    """The run was refused: stale plan, another run holds the brand, credentials rejected."""

    exit_code = EXIT_REFUSED


class QuotaStop(TrendioError):
    """A daily request quota or weekly outreach quota stops the work until it resets."""

    exit_code = EXIT_QUOTA


class LedgerError(TrendioError):
    """The ledger file cannot be opened, read or written."""

    exit_code = EXIT_FAILURE


class LedgerNotFound(BadInput):
    """No ledger where one was named (a view of a missing file, a new ledger in a folder that does not
    exist): usually a wrong --ledger or TRENDIO_LEDGER. The CLI adds where the location came from."""

    def __init__(self, path: str, *, folder_missing: bool = False) -> None:
        self.path = path
        self.folder_missing = folder_missing
        where = f"no ledger at {path}"
        if folder_missing:
            where += f", and its folder {_parent(path)} does not exist"
        super().__init__(where)


def _parent(path: str) -> str:
    from pathlib import Path

    return str(Path(path).parent)
