"""What the `sched` process marks absent before its libraries load: modules they import only to
probe for, that this process never uses.

httpcore imports trio whenever it is installed (to pick its locks per event loop; sched runs
asyncio only), and httpx imports its own command-line client (click, rich, pygments) whenever
those are installed. Together that is ~0.15 s of CPU on every `sched run text`, a third of the
process's imports (measured with `python -X importtime`, benchmarks/peers.py). A `None` in
sys.modules makes `import` raise ImportError, which is exactly the "not installed" branch both
libraries already take. Only the real process does this (`main()` reading sys.argv): a test or
program that imports scheduler.cli keeps its own modules as they are.
"""

from __future__ import annotations

import sys

PROBED_ONLY = ("trio", "httpx._main")


def skip_probed_imports() -> None:
    """Mark PROBED_ONLY absent, unless something in this process imported one already."""
    for name in PROBED_ONLY:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: absent, by design
