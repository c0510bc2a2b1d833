"""The sched process marks probed-only modules absent (scheduler/cli/lean.py), and still works."""

from __future__ import annotations

import subprocess
import sys

from scheduler.cli.lean import PROBED_ONLY

_CHILD = """
import sys
from scheduler.cli.lean import skip_probed_imports
skip_probed_imports()
import httpx, httpcore  # noqa: E401
transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))
with httpx.Client(transport=transport) as client:
    assert client.get("http://x.invalid/").json() == {"ok": True}
print(sorted(n for n in ("trio", "httpx._main", "rich", "pygments") if sys.modules.get(n)))
"""


def test_probed_modules_stay_unloaded_and_httpx_still_works() -> None:
    done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_caller_passing_argv_keeps_its_modules() -> None:
    from scheduler.cli import main

    try:
        main(["--version"])
    except SystemExit:
        pass
    assert all(sys.modules.get(name, "unset") is not None for name in PROBED_ONLY)
