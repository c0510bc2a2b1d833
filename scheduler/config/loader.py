"""Load providers.yaml into a validated `Config`, with errors that name file, key path and line.

YAML is parsed once into nodes, so the same pass yields the data, a map from key path to line
number, and duplicate-key detection (PyYAML silently keeps the last of two equal keys, which
would let a second `groq:` entry quietly replace the first).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scheduler.config.schema import Config
from scheduler.errors import ConfigError, shown

try:  # the C loader is several times faster; the pure one behaves the same
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

CONFIG_ENV = "SCHED_CONFIG"
DEFAULT_FILE = "providers.yaml"
# A priority table is a few kB; anything this large is not one, and must not be read whole.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# Nodes the YAML may stand for once aliases are expanded: a real table has a few thousand; a
# "billion laughs" (aliases of aliases) would stand for billions and hang the validation.
MAX_EXPANDED_NODES = 200_000
# Files that may nest deeper than this are parsed by the pure loader (see `_loader_for`).
MAX_SHALLOW = 200


@dataclass(frozen=True)
class ConfigSource:
    """Where the configuration came from, shown by `sched config check`."""

    path: Path
    origin: str  # "--config", "SCHED_CONFIG", "./providers.yaml" or "packaged default"


def resolve_config_path(cli_path: str | os.PathLike[str] | None = None) -> ConfigSource:
    """`--config`, then $SCHED_CONFIG, then ./providers.yaml, then the packaged copy."""
    if cli_path:
        return ConfigSource(Path(cli_path), "--config")
    if env_path := os.environ.get(CONFIG_ENV):
        return ConfigSource(Path(env_path), CONFIG_ENV)
    local = Path(DEFAULT_FILE)
    if local.is_file():
        return ConfigSource(local, f"./{DEFAULT_FILE}")
    packaged = resources.files("scheduler").joinpath(DEFAULT_FILE)
    return ConfigSource(Path(str(packaged)), "packaged default")


def _format_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        index = isinstance(part, int) and not isinstance(part, bool)
        out += f"[{part}]" if index else (f".{part}" if out else str(part))
    return out


def _walk(
    node: yaml.Node,
    path: tuple[int | str, ...],
    lines: dict[str, int],
    file: str,
    walked: set[yaml.Node] | None = None,
) -> None:
    """Record the line of every key path and reject duplicate mapping keys."""
    lines[_format_path(path)] = node.start_mark.line + 1
    walked = set() if walked is None else walked
    if node in walked:  # an alias: walked where its anchor is (and a cyclic one never ends)
        return
    walked.add(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:bool":
                raise ConfigError(
                    f"the key {shown(key)} reads as a boolean in YAML (yes/no/on/off); quote it",
                    file=file,
                    path=_format_path((*path, key)),
                    line=line,
                )
            if key in seen:
                raise ConfigError(
                    f"duplicate key {shown(key)} (first defined on line {seen[key]})",
                    file=file,
                    path=_format_path((*path, key)),
                    line=line,
                )
            seen[key] = line
            _walk(value_node, (*path, key), lines, file, walked)
            lines[_format_path((*path, key))] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, file, walked)


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse YAML whose aliases expand past MAX_EXPANDED_NODES.

    PyYAML builds an alias as a shared reference, so the data is small; but validation and
    every later walk visit each reference in full. The expanded size is counted on the node
    graph, each node once (memoised), so this check itself stays linear in the file.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:  # a cyclic alias stands for no more than it already counted
            return 0
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"YAML aliases expand to more than {MAX_EXPANDED_NODES} values"
                    " (an alias bomb?); write the table out without nested aliases",
                    file=file,
                    line=node.start_mark.line + 1,
                )
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def _line_for(lines: dict[str, int], loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest existing prefix: a missing key is reported where its parent is."""
    for end in range(len(loc), -1, -1):
        line = lines.get(_format_path(loc[:end]))
        if line is not None:
            return line
    return None


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the schema allows where `loc` points (its last element is the key itself): the
    field names of the model reached by following `loc[:-1]` through the annotations."""
    import types
    from typing import Union, get_args, get_origin

    from pydantic import BaseModel

    def unwrap(annotation: Any) -> Any:
        if get_origin(annotation) in (Union, types.UnionType):
            for arg in get_args(annotation):
                if arg is not type(None):
                    return unwrap(arg)
        return annotation

    current: Any = Config
    for step in loc[:-1]:
        current = unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(step))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (dict, tuple, list):
            current = get_args(current)[-1 if get_origin(current) is dict else 0]
        else:
            return []
    current = unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    import difflib

    matches = difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else " (check its spelling)"


def _first_error(errors: list[Any]) -> Any:
    """The error to report: pydantic's first, except that a misspelt key (`adaptr`) is reported
    rather than the required key it was meant to be (`adapter` missing), which says less."""
    import difflib

    missing = {tuple(e["loc"]) for e in errors if e["type"] == "missing"}
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            for match in difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1):
                if (*loc[:-1], match) in missing:
                    return error
    return errors[0]


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "literal_error":
        expected = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"expected one of {expected}, got {shown(got)}"
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(tuple(error["loc"]))
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {shown(got)}"


def _depth_bound(text: str) -> int:
    """An upper bound, for ordinary files, of how deeply the YAML nests: open flow brackets
    plus twice the deepest content column (block levels indent, and "- - x" counts its dashes).
    Computed on the raw text in one pass, before any parser sees it."""
    flow = deepest = 0
    for char in text:
        if char in "[{":
            flow += 1
            deepest = max(deepest, flow)
        elif char in "]}":
            flow = max(0, flow - 1)
    column = max((len(line) - len(line.lstrip(" -?:")) for line in text.splitlines()), default=0)
    return deepest + 2 * column + 1


def _loader_for(text: str) -> type[yaml.SafeLoader]:
    """The C loader for every real table; the pure one for anything that may nest deeply.

    libyaml composes nodes by C recursion, so a document nested some ten thousand levels
    deep (a few kB of "[") kills the process with a segmentation fault; the pure loader's
    recursion ends in a RecursionError, which becomes a ConfigError.
    """
    return _Loader if _depth_bound(text) <= MAX_SHALLOW else yaml.SafeLoader


def parse_config(text: str, *, file: str = DEFAULT_FILE) -> Config:
    """Parse and validate YAML text; raises ConfigError naming the first problem."""
    try:
        loader = _loader_for(text)(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except RecursionError:
        raise ConfigError(
            "the YAML nests too deeply to be a priority table (hundreds of levels)",
            file=file,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    if node is None or not isinstance(data, dict):
        raise ConfigError("expected a mapping with 'providers' and 'tasks' at the top", file=file)
    _check_expansion(node, file)
    lines: dict[str, int] = {}
    _walk(node, (), lines, file)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = _first_error(exc.errors())
        loc = tuple(first["loc"])
        if loc[-1:] == ("[key]",):  # pydantic's marker for a bad dict key: report the key itself
            loc = loc[:-1]
        raise ConfigError(
            _message(first), file=file, path=_format_path(loc), line=_line_for(lines, loc)
        ) from None
    _check_references(config, lines, file)
    _check_prices(config, lines, file)
    return config


def _check_references(config: Config, lines: dict[str, int], file: str) -> None:
    """Cross-key rules pydantic cannot see: the priority table names only defined providers."""
    for kind, names in config.tasks.items():
        seen: set[str] = set()
        for index, name in enumerate(names):
            loc = ("tasks", kind, index)
            if name not in config.providers:
                known = ", ".join(sorted(config.providers))
                raise ConfigError(
                    f"unknown provider {shown(name)}; defined providers: {known}",
                    file=file,
                    path=_format_path(loc),
                    line=_line_for(lines, loc),
                )
            if name in seen:
                raise ConfigError(
                    f"provider {shown(name)} is listed twice",
                    file=file,
                    path=_format_path(loc),
                    line=_line_for(lines, loc),
                )
            seen.add(name)


def _check_prices(config: Config, lines: dict[str, int], file: str) -> None:
    """A provider that can bill must have a price: a free allowance means usage past it is paid
    (with allow_paid), and a paid call recorded as $0 would never trip a budget."""
    from scheduler.cost import is_billable

    for name, provider in config.providers.items():
        free = [index for index, rule in enumerate(provider.quotas) if rule.free]
        if free and not is_billable(provider.pricing):
            loc = ("providers", name, "pricing")
            raise ConfigError(
                f"{name} has a free allowance (quotas[{free[0]}] is free: true) but no price:"
                " usage past it would be billed at an unknown price; add its list prices, or"
                " drop `free: true` to make the limit a hard stop",
                file=file,
                path=_format_path(loc),
                line=_line_for(lines, loc),
            )


def read_config_text(path: Path) -> str:
    """The file's text, refusing at once what is not a regular file of sane size.

    Opened non-blocking and checked with fstat on the open descriptor, so a FIFO (which would
    block until a writer comes), a device (/dev/zero never ends) or a file swapped in between
    check and read is refused without waiting, and at most MAX_CONFIG_BYTES + 1 bytes are read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
            raise ConfigError(
                f"is {kind}, not a regular file; expected a YAML file", file=str(path)
            )
        if info.st_size > MAX_CONFIG_BYTES:
            raise _too_big(path)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:  # grew after the fstat
        raise _too_big(path)
    return raw.decode("utf-8")


def _too_big(path: Path) -> ConfigError:
    return ConfigError(
        f"is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MB; a priority table is a few kB",
        file=str(path),
    )


def load_config(cli_path: str | os.PathLike[str] | None = None) -> tuple[Config, ConfigSource]:
    """Find, read and validate the configuration."""
    source = resolve_config_path(cli_path)
    try:
        text = read_config_text(source.path)
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found (from {source.origin}); pass --config PATH or set {CONFIG_ENV}",
            file=str(source.path),
        ) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", file=str(source.path)) from None
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", file=str(source.path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(source.path)) from None
    return parse_config(text, file=str(source.path)), source


__all__ = [
    "CONFIG_ENV",
    "MAX_CONFIG_BYTES",
    "MAX_EXPANDED_NODES",
    "ConfigSource",
    "load_config",
    "parse_config",
    "read_config_text",
    "resolve_config_path",
]
