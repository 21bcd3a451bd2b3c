"""Where things are printed: data on stdout (one JSON document with --json), people's text on stderr.

The JSON result envelope (versioned) is the same for every command:
`{"version": 1, "command": ..., "status": "success" | "partial" | "error", "exit_code": n, ..., "errors": [...]}`.

Text that comes from files or the platform (handles, names, messages) is data, never Rich markup: `clean`
makes it printable (no control characters, so no terminal escape codes) and `Text` keeps it from being
parsed as markup. Secrets in URLs never reach output: `redact` takes them out of any message."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from trendio_cli.errors import BadInput

ENVELOPE_VERSION = 1
STATUS_BY_EXIT = {0: "success", 3: "partial"}

# Rich honours NO_COLOR (and FORCE_COLOR) by itself; colour only where a terminal (or FORCE_COLOR) asks for it.
stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)

# Characters that move the cursor, change the terminal's state or reorder what is shown: C0 and C1 controls
# (ESC among them), DEL, line and paragraph separators, and the bidirectional overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """A value from a file or the platform, fit for one line of a terminal: every control character shown
    as an escape (`\\x1b`, `\\n`) instead of acting."""
    text = "" if value is None else str(value)
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: _escape_char(m.group()), text)


def _escape_char(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def text(value: Any, style: str = "") -> Text:
    """A value as Rich text that is never parsed as markup (`[/x]` stays `[/x]`, `[link=...]` no link)."""
    return Text(clean(value), style=style)


# --- secrets ---------------------------------------------------------------------------------------
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")
_PASSWORD_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|sslpassword)=([^\s&'\"]+)")


def url_secrets(url: str | None) -> list[str]:
    """The userinfo of a URL as given on the command line (even an unparseable one), and its password."""
    if not url or "://" not in url:
        return []
    rest = str(url).split("://", 1)[1]
    if "@" not in rest:
        return []
    userinfo = rest.rsplit("@", 1)[0]
    secrets = [userinfo]
    if ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        secrets += [password, _percent_decoded(password)]
    # A plain word is left alone (a password `postgres` would eat `postgresql` everywhere); what libpq quotes
    # back is a password it could not parse, which has a space or another odd character in it.
    return [s for s in dict.fromkeys(secrets) if len(s) >= 8 or not s.isalnum()]


def _percent_decoded(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


def redact(message: str, secrets: Iterable[str] = ()) -> str:
    """The message without userinfo in URLs (`scheme://…@host`), `password=` values, or any of `secrets`."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        message = message.replace(secret, "…")
    message = _USERINFO.sub(lambda m: f"{m.group('scheme')}…@", message)
    return _PASSWORD_PARAM.sub(lambda m: f"{m.group(1)}=…", message)


def shown_url(url: str) -> str:
    """A URL fit to print: no user, no password."""
    return redact(url, url_secrets(url))


# --- JSON ----------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# json escapes C0 controls itself; C1 controls and the line separators pass through with ensure_ascii=False,
# and some terminals act on them. They can only occur inside strings, where \u escapes mean the same.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def to_json(doc: Any) -> str:
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                            json.dumps(doc, default=_default, indent=2, ensure_ascii=False))


def emit_json(doc: Any) -> None:
    sys.stdout.write(redact(to_json(doc)) + "\n")
    sys.stdout.flush()


def envelope(command: str, exit_code: int, errors: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "version": ENVELOPE_VERSION,
        "command": command,
        "status": STATUS_BY_EXIT.get(exit_code, "error"),
        "exit_code": exit_code,
        **fields,
        "errors": errors or [],
    }


# --- lines for people on stderr --------------------------------------------------------------------
def say(message: str | Text, style: str = "") -> None:
    """One line on stderr, never wrapped (logs and editors read it whole), never parsed as markup, without
    control characters or a URL's userinfo."""
    shown = message if isinstance(message, Text) else Text(clean(message), style=style)
    stderr.print(Text(redact(shown.plain), style=shown.style) if "@" in shown.plain or "=" in shown.plain
                 else shown, soft_wrap=True)


def error_line(label: str, message: str, hint: str | None = None) -> None:
    """`error: message` in red (where colour is on), and its hint on the next line."""
    stderr.print(Text.assemble((label, "bold red"), " ", clean(redact(message))), soft_wrap=True)
    if hint:
        stderr.print(Text(f"  hint: {clean(redact(hint))}"), soft_wrap=True)


def warning_line(message: str) -> None:
    stderr.print(Text.assemble(("warning:", "bold yellow"), " ", clean(message)), soft_wrap=True)


def when(moment: datetime | str | None) -> str:
    """A time for people: minutes, with its time zone (`2026-05-02 00:00 UTC`, `2026-05-03 12:00 UTC-08:00`)."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return clean(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    offset = moment.utcoffset()
    if not offset:
        zone = "UTC"
    else:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        zone = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{moment:%Y-%m-%d %H:%M} {zone}"


# --- files written for people ----------------------------------------------------------------------
@contextmanager
def private_file(path: Path | str, *, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Write a file readable by its owner only (0600, like the ledger: plans, reports and exports hold what
    the ledger holds), whole or not at all: written beside it, then moved into place."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise BadInput(f"{target}: the folder {folder} does not exist")
    if target.is_dir():
        raise BadInput(f"{target}: is a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_private(path: Path | str, content: str) -> None:
    with private_file(path) as fh:
        fh.write(content)


def debug_enabled() -> bool:
    return os.environ.get("TRENDIO_DEBUG", "") not in ("", "0")
