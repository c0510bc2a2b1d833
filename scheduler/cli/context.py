"""What every command needs: the configuration, the ledger and the keys, opened on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from scheduler.client import Scheduler
    from scheduler.config import Config, ConfigSource, KeyStore
    from scheduler.ledger import Ledger


@dataclass
class AppState:
    """Root options, with the objects built from them cached for the command's lifetime."""

    config_path: str | None = None
    db_target: str | None = None
    # Set while --json is parsed, so the one error boundary (cli.main) knows to answer an error
    # with a JSON object too, whichever command and whichever error it was.
    as_json: bool = False
    _config: tuple[Config, ConfigSource] | None = field(default=None, repr=False)
    _ledger: Ledger | None = field(default=None, repr=False)

    def config(self) -> Config:
        return self.loaded()[0]

    def loaded(self) -> tuple[Config, ConfigSource]:
        if self._config is None:
            from scheduler.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from scheduler.ledger import Ledger, resolve_db_target

            settings = self.config().settings
            self._ledger = Ledger.open(
                resolve_db_target(self.db_target),
                lease_s=settings.reservation_lease_s,
                max_block_s=settings.max_block_s,
            )
        return self._ledger

    def scheduler(self) -> Scheduler:
        """A library `Scheduler` over this command's table, ledger target and keys (unopened:
        the caller opens it in its event loop)."""
        from scheduler.client import Scheduler

        return Scheduler(self.config(), db=self.db_target, keys=self.keys())

    def targets(self) -> tuple[str, str]:
        """The config file and the ledger as absolute references: what a child process (a cron
        job, a gateway worker) is handed, so it opens the same files from any directory."""
        from pathlib import Path

        from scheduler.ledger import resolve_db_target

        _, source = self.loaded()
        target = resolve_db_target(self.db_target)
        if "://" not in target:
            target = str(Path(target).resolve())
        return str(source.path.resolve()), target

    def keys(self) -> KeyStore:
        from scheduler.config import KeyStore

        return KeyStore()


def _remember_json(ctx: typer.Context, value: bool) -> bool:
    if value and isinstance(ctx.obj, AppState):
        ctx.obj.as_json = True
    return value


def json_flag(help: str = "Print one JSON object.") -> Any:
    """The --json option every command shares: it also tells the error boundary to answer in
    JSON."""
    return typer.Option("--json", help=help, callback=_remember_json)  # typer types it Any


JsonFlag = Annotated[bool, json_flag()]


__all__ = ["AppState", "JsonFlag", "json_flag"]
