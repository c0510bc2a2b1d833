"""Help placeholders that read like words: `TEXT`, `N`, `FILE...`, `PROMPT`, not typer's
`<str>`, `<int range>` or `<list[Path]>`, and nothing after a flag.

Applied once to the whole command tree (cli.main), so a new option gets a word without anyone
remembering to set `metavar=`; an option that sets its own (`USD`, `WxH`) keeps it.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument

# typer's name of a parameter's type (`bare_type()`, lists unwrapped) -> the word shown
_WORDS = {"str": "TEXT", "int": "N", "float": "NUMBER", "Path": "FILE", "bool": "BOOL"}


def name_placeholders(command: Any) -> None:
    """Give every parameter of `command` and its subcommands a word as its metavar."""
    for param in command.params:
        if param.metavar is not None:
            continue
        if isinstance(param, TyperArgument):
            word = param.name.upper()
            if param.nargs != 1:  # FILES -> FILE, shown as FILE... in the usage line
                word = word.removesuffix("S")
            param.metavar = word
            # typer prints an argument's type next to its name even when it has a metavar
            param.__class__ = WordyArgument
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        else:
            bare = param.bare_type().removeprefix("list[").removesuffix("]")
            param.metavar = _WORDS.get(bare, bare.upper())
    # --help is made (and kept) on first use; made here, it can lose its `<bool>` too
    help_option = command.get_help_option(typer.Context(command))
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        name_placeholders(sub)


class WordyArgument(TyperArgument):
    """An argument whose metavar (`FILE...`) says it all: no `<list[Path]>` beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


__all__ = ["name_placeholders"]
