"""What a client's `model` field means at the gateway: a route through the priority table.

OpenAI clients must name a model; here the name picks how the table is used:

- `auto` (or nothing): the table's order for the endpoint's task kind;
- `free`: the same, refusing every call that would cost money;
- `cheapest` / `fastest`: the table reordered by this call's estimated cost / median latency;
- `PROVIDER/MODEL` (or just `PROVIDER`): that provider only, with that model (or its configured
  one). Model names may hold slashes themselves (`groq/openai/gpt-oss-120b`).
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.config.schema import Config
from scheduler.options import RunOptions
from scheduler.tasks import TaskKind

ROUTES = ("auto", "free", "cheapest", "fastest")


class UnknownRoute(Exception):
    """The client named a model that is neither a route nor a configured provider."""


@dataclass(frozen=True)
class Route:
    name: str  # as the client sent it (normalised: "" -> "auto")
    options: RunOptions
    model: str | None = None  # overrides the provider's configured model


def parse_route(config: Config, model: str | None) -> Route:
    name = (model or "auto").strip() or "auto"
    if name == "auto":
        return Route(name, RunOptions())
    if name == "free":
        return Route(name, RunOptions(free_only=True))
    if name == "cheapest":
        return Route(name, RunOptions(strategy="cheapest"))
    if name == "fastest":
        return Route(name, RunOptions(strategy="fastest"))
    provider, _, pinned = name.partition("/")
    if provider in config.providers:
        return Route(name, RunOptions(provider=provider), pinned or None)
    raise UnknownRoute(
        f"unknown model {name[:100]!r}: use auto, free, cheapest, fastest or PROVIDER/MODEL"
        " (GET /v1/models lists them)"
    )


def route_ids(config: Config, kinds: tuple[TaskKind, ...]) -> list[str]:
    """Every name `/v1/models` offers: the routes, then each enabled provider's configured model
    per kind it serves (`PROVIDER/MODEL`), in table order, without repeats."""
    ids = list(ROUTES)
    for kind in kinds:
        for provider in config.tasks.get(kind, ()):
            entry = config.providers[provider]
            for model in entry.models_for(kind) if entry.enabled else ():
                if f"{provider}/{model}" not in ids:
                    ids.append(f"{provider}/{model}")
    return ids


__all__ = ["ROUTES", "Route", "UnknownRoute", "parse_route", "route_ids"]
