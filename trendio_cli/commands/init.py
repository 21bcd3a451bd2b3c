"""`trendio init`: a starter campaign, a sample creators file and an empty ledger."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from trendio_cli.errors import BadInput
from trendio_cli.ledger import Ledger

STARTER_FILES = ("campaign.yaml", "creators.csv")


def init_project(directory: Path, *, ledger_name: str = "trendio.db", force: bool = False) -> dict[str, Any]:
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    targets = [directory / name for name in STARTER_FILES]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise BadInput(f"{existing[0]} already exists; pass --force to overwrite the starter files")
    starter = resources.files("trendio_cli") / "data" / "starter"
    for name, target in zip(STARTER_FILES, targets):
        target.write_bytes((starter / name).read_bytes())
    ledger_path = directory / ledger_name
    # never overwritten, not even with --force: it may hold invitations, the record of who was invited
    kept = ledger_path.exists()
    Ledger.open(ledger_path).close()
    return {"directory": str(directory), "files": [str(t) for t in targets], "ledger": str(ledger_path),
            "ledger_kept": kept}
