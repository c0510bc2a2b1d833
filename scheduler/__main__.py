"""`python -m scheduler` is the same as `sched`."""

from __future__ import annotations

from scheduler.cli import main

main()
