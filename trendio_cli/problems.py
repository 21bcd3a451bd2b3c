"""A located problem in an input file: `file:line:col: message`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    message: str
    severity: str = "error"  # or "warning"

    def __post_init__(self) -> None:
        # one problem, one line: editors and CI parse `file:line:col:` line by line
        if any(ch in self.message for ch in "\n\r\x85\u2028\u2029"):
            flat = " ".join(self.message.replace("\r", "\n").replace("\x85", "\n").replace("\u2028", "\n")
                            .replace("\u2029", "\n").split())
            object.__setattr__(self, "message", flat)

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {prefix}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col, "severity": self.severity,
                "message": self.message}


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
