"""`scheduler` as a library: its public names, the README's examples run as written, one
`Scheduler` serving concurrent calls with different options, and the ledger off the event loop."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import scheduler
from scheduler import Message, RunOptions, Scheduler, TextTask
from scheduler.config import parse_config
from tests.conftest import clean_env, openai_provider, write_config
from tests.fakes import openai_shapes
from tests.fakes.server import FakeServer

README = Path(__file__).resolve().parents[1] / "README.md"
PATIENCE_S = 60  # bounds a failing wait; a passing run never waits for it


# -- public surface ------------------------------------------------------------------------------


def test_every_exported_name_resolves_to_its_defining_module() -> None:
    assert sorted(scheduler.__all__) == sorted(set(scheduler.__all__))
    for name in scheduler.__all__:
        value = getattr(scheduler, name)
        if name == "__version__":
            assert re.fullmatch(r"\d+\.\d+\.\d+.*", value)
            continue
        module = importlib.import_module(scheduler._EXPORTS[name])
        assert value is getattr(module, name), name
    assert set(scheduler._EXPORTS) == set(scheduler.__all__) - {"__version__"}
    assert set(scheduler.__all__) <= set(dir(scheduler))
    with pytest.raises(AttributeError):
        scheduler.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_import_scheduler_alone_stays_light() -> None:
    """`import scheduler` (what `sched --help` pays) loads no HTTP, validation or SDK stack."""
    code = (
        "import sys, scheduler; heavy = {'httpx', 'pydantic', 'openai', 'sqlalchemy', 'yaml'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_env()
    )
    assert out.stdout.strip() == "[]"


def test_the_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert scheduler.__version__ == version("api-scheduler")


# -- the README's examples, run as written -----------------------------------------------------


def _readme_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.mark.parametrize("index", [0, 1])
def test_the_readme_examples_print_an_answer_through_a_fake_provider(
    tmp_path: Path, fake: FakeServer, index: int
) -> None:
    examples = _readme_examples()
    assert len(examples) == 2
    assert len(examples[0].strip().splitlines()) <= 12  # the "ten-line example"
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("Nile, Amazon."))
    write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY")},
        {"text": ["a"]},
    )
    (tmp_path / "example.py").write_text(examples[index], encoding="utf-8")
    env = {**clean_env(), "A_KEY": "sk-a-0000000000000001"}
    out = subprocess.run(
        [sys.executable, "example.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=PATIENCE_S,
    )
    assert (out.returncode, out.stdout) == (0, "Nile, Amazon.\n"), out.stderr
    assert (tmp_path / "quota.db").exists()  # the default ledger in the working directory
    assert fake.count("/a/v1/chat/completions") == 1


# -- one Scheduler, many callers, each with its own options ------------------------------------

CONCURRENT = """
settings: {allow_paid: true, retries: 0}
providers:
  limited:
    adapter: openai
    base_url: "http://limited.test/v1"
    api_key_env: L_KEY
    models: {text: m}
    quotas: [{metric: requests, limit: 30, per: day}]
    pricing: {usd_per_mtok_input: 100, usd_per_mtok_output: 200}
  spare:
    adapter: openai
    base_url: "http://spare.test/v1"
    api_key_env: S_KEY
    models: {text: m}
tasks:
  text: [limited, spare]
"""
# 50 calls: four of every five want `limited` (default order, two spending caps that allow it,
# pinned to it); the fifth is free-only. 40 want it, 30 may have it.
OPTIONS = (
    RunOptions(),
    RunOptions(max_cost=1.0),
    RunOptions(max_cost=0.5),
    RunOptions(provider="limited"),
    RunOptions(free_only=True),
)


def test_fifty_concurrent_calls_with_mixed_options_share_one_limit_exactly(
    db_target: str,
) -> None:
    hosts: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        await asyncio.sleep(0.001)  # let the other calls interleave
        usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
        body = {
            "object": "chat.completion",
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
            "usage": usage,
        }
        return httpx.Response(200, json=body)

    async def go() -> list[tuple[RunOptions, scheduler.RunResult]]:
        async with Scheduler(
            parse_config(CONCURRENT),
            db=db_target,
            keys={"L_KEY": "sk-l", "S_KEY": "sk-s"},
            transport=httpx.MockTransport(answer),
        ) as s:
            calls = [OPTIONS[i % len(OPTIONS)] for i in range(50)]
            runs = await asyncio.gather(
                *(s.run(TextTask(f"task {i}", max_tokens=1000), o) for i, o in enumerate(calls))
            )
            return list(zip(calls, runs, strict=True))

    results = asyncio.run(go())
    assert hosts.count("limited.test") == 30  # exactly the limit, never more
    for options, run in results:
        if options.max_cost is not None:
            assert run.cost_usd <= options.max_cost + 1e-12
        if options.free_only:
            assert (run.provider, run.cost_usd) == ("spare", 0.0)
        if options.provider == "limited":
            assert run.provider in ("limited", None)  # pinned: never another provider
        else:
            assert run.ok
    limited_cost = 1000 * 100 / 1e6 + 1000 * 200 / 1e6  # $0.30 per call at list price
    for _, run in results:
        if run.provider == "limited":
            assert run.cost_usd == pytest.approx(limited_cost)
    # $0.50 allows one call at $0.30 (held at its estimate, 1000 + prompt tokens, meanwhile).
    assert {run.provider for o, run in results if o.max_cost == 0.5} <= {"limited", "spare"}


# -- the ledger off the event loop ---------------------------------------------------------------

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # the write lock, as a busy writer of another process holds it
print("locked", flush=True)
sys.stdin.readline()  # held until the test says so
db.execute("COMMIT")
"""


def test_a_busy_sqlite_writer_does_not_stall_other_coroutines(
    tmp_path: Path, fake: FakeServer
) -> None:
    """While another process holds the ledger's write lock, one coroutine's reservation waits;
    another coroutine's provider call must go on meanwhile. A ledger called on the event loop
    would freeze both until the lock is released."""
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("served"))
    fake.route("GET", "/other", default=openai_shapes.chat_ok("other"))
    config = write_config(
        tmp_path / "p.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY")},
        {"text": ["a"]},
    )
    db = tmp_path / "quota.db"

    async def go() -> tuple[bool, str]:
        async with Scheduler(config, db=db, keys={"A_KEY": "sk-a-0000000000000001"}) as s:
            locker = subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(db)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
                blocked = asyncio.create_task(s.run(TextTask("hi")))
                await asyncio.sleep(0)  # it starts, and waits for the lock in the ledger thread
                async with httpx.AsyncClient() as http:
                    other = await http.get(f"{fake.url}/other", timeout=PATIENCE_S)
                still_waiting = not blocked.done()
            finally:
                locker.communicate("release\n", timeout=PATIENCE_S)  # and closes its pipes
            run = await blocked
            assert other.status_code == 200
            return still_waiting, run.result.output if run.result else str(run.attempts)

    still_waiting, output = asyncio.run(go())
    assert still_waiting  # the other call finished while the reservation was still blocked
    assert output == "served"


# -- conversations ---------------------------------------------------------------------------


def test_a_conversation_reaches_the_provider_as_messages(fake: FakeServer, tmp_path: Path) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("Paris."))
    config = write_config(
        tmp_path / "p.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY")},
        {"text": ["a"]},
    )
    task = TextTask(
        messages=[
            Message("user", "Capital of Italy?"),
            Message("assistant", "Rome."),
            Message("user", "And of France?"),
        ],
        system="Answer in one word.",
        temperature=0.2,
        stop=("\n",),
    )
    with Scheduler.sync(config, db=tmp_path / "q.db", keys={"A_KEY": "sk-a-01234567"}) as s:
        run = s.run(task)
    assert run.result is not None and run.result.output == "Paris."
    sent = fake.requests("/a/v1/chat/completions")[0].json()
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "And of France?"},
    ]
    assert (sent["temperature"], sent["stop"]) == (0.2, ["\n"])
    assert json.loads(json.dumps(sent))["model"] == "m"
