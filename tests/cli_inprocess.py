"""`sched` in this process, through its real entry point (`scheduler.cli.main`): the error
boundary, exit codes, stdout and stderr as a user sees them, without a subprocess's start-up."""

from __future__ import annotations

import pytest

from scheduler.cli import main
from tests.conftest import CliResult


def sched(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """Run `sched ARGS...`; the streams are read afterwards, so earlier output is discarded."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    code = exit_info.value.code
    return CliResult(code if isinstance(code, int) else 1, captured.out, captured.err)


__all__ = ["sched"]
