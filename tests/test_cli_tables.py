"""Tables fit the terminal they are printed in (80, 120, 200 columns): no row wraps, the
provider and remaining columns stay, less important columns go first; piped, nothing is cut."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from scheduler.cli.render import Column, fit_table
from tests.cli_inprocess import sched
from tests.conftest import openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer

WIDTHS = (80, 120, 200)
QUOTAS = "{metric: requests, limit: 1000, per: day}\n{metric: tokens, limit: 250000, per: minute}"


def _render(table: object, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO())
    console.print(table)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_least_important_columns_go_first_and_the_caption_says_which() -> None:
    columns = [
        Column("provider"),
        Column("detail", 1, shrink=True),
        Column("calls", 3, "right"),
        Column("remaining", 0, "right"),
    ]
    rows = [("groq-long-name", "x" * 60, "12345678901234567890", "1,000,000")]
    wide = _render(fit_table(columns, rows, 200), 200)
    assert "calls" in wide[1] and "x" * 60 in "\n".join(wide)
    narrow = _render(fit_table(columns, rows, 60), 60)
    header, row = narrow[1], narrow[3]
    assert "calls" not in header and "provider" in header and "remaining" in header
    assert "groq-long-name" in row and "1,000,000" in row  # key cells never cut
    assert "…" in row  # the shrinkable detail was cut, not wrapped
    assert all(len(line) <= 60 for line in narrow)
    assert "hidden at this width: calls" in "\n".join(narrow)


@pytest.fixture
def used_ledger(tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    providers = {
        name: openai_provider(fake.base_url(name), f"{name.upper()}_KEY", quotas=QUOTAS)
        + "\npricing: {usd_per_mtok_input: 0.5, usd_per_mtok_output: 1.5}"
        for name in ("groq", "mistral")
    }
    write_config(
        tmp_path / "providers.yaml", providers, {"text": ["groq", "mistral"]}, "allow_paid: true"
    )
    monkeypatch.setenv("GROQ_KEY", "gsk_test_key_for_tables")
    fake.route("POST", shapes.chat_path("groq"), default=shapes.chat_ok("fine"))


def _assert_fits(text: str, width: int, must_show: tuple[str, ...]) -> None:
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]
    header = next(line for line in lines if line.startswith("┃"))
    for column in must_show:
        assert column in header, (column, header)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("args", "must_show", "rows"),
    [
        (("quota", "report"), ("provider", "remaining"), ("groq", "mistral")),
        (("providers", "list"), ("provider", "status"), ("groq", "mistral")),
        (("cost", "report"), ("provider", "paid"), ("groq", "total")),
        (("cron", "list"), ("job", "next run (UTC)"), ("daily-reset", "quota-check")),
    ],
)
def test_every_table_fits_the_terminal(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    used_ledger: None,
    width: int,
    args: tuple[str, ...],
    must_show: tuple[str, ...],
    rows: tuple[str, ...],
) -> None:
    assert sched(capsys, "run", "text", "hi").code == 0
    monkeypatch.setenv("COLUMNS", str(width))
    result = sched(capsys, *args)
    assert result.code == 0, result.stderr
    _assert_fits(result.stdout, width, must_show)
    body = [line for line in result.stdout.splitlines() if line.startswith("│")]
    for name in rows:  # each row on one line: its first cell is found whole
        assert any(line.startswith(f"│ {name} ") for line in body), (name, result.stdout)


def test_piped_output_is_never_cut(capsys: pytest.CaptureFixture[str], used_ledger: None) -> None:
    result = sched(capsys, "quota", "report")
    header = next(line for line in result.stdout.splitlines() if line.startswith("┃"))
    for column in ("reserved", "next reset", "calls 24h", "fail 24h", "status"):
        assert column in header
    assert "…" not in result.stdout and "hidden at this width" not in result.stdout
    assert "not_configured: no MISTRAL_KEY" in result.stdout
