"""Each configured provider's live model list, compared with the table (`sched models`,
`models-check`).

For every provider asked about: its adapter's `list_models` (the provider's own endpoint); each
model the table names for it is `present` in that list or `missing`, and carries its retired
mark from the ledger if it has one. A provider without a key, disabled, or whose adapter reads no
list is skipped with the reason; one whose list endpoint fails is reported failed, classified as
any call. A successful listing is stored (`ledger.models.record_listing`), prices included, and
`underpriced` compares those published prices with the table's (`sched config check`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from scheduler.errors import ProviderError
from scheduler.ledger.models import (
    Listed,
    Retired,
    published_prices,
    record_listing,
    retired_models,
)
from scheduler.providers.listing import ModelInfo, NoListing, dedupe
from scheduler.providers.registry import adapter_class

if TYPE_CHECKING:
    import httpx

    from scheduler.config.keys import KeyStore
    from scheduler.config.schema import Config
    from scheduler.ledger.store import Ledger
    from scheduler.tasks import TaskKind

State = Literal["present", "missing"]


@dataclass(frozen=True)
class Configured:
    """One model the table names for a provider, against the provider's list."""

    kind: TaskKind
    model: str
    state: State
    retired: Retired | None = None


@dataclass(frozen=True)
class ProviderCatalog:
    """What one provider's list endpoint said, and how the table's models compare."""

    provider: str
    status: Literal["ok", "skipped", "failed"]
    reason: str | None = None
    models: tuple[ModelInfo, ...] = ()
    configured: tuple[Configured, ...] = ()

    @property
    def missing(self) -> tuple[Configured, ...]:
        return tuple(c for c in self.configured if c.state == "missing")


def _listed(ident: str, ids: set[str]) -> bool:
    """Whether the table's `ident` is in the list (Gemini ids may keep their `models/`)."""
    return ident in ids or ident.removeprefix("models/") in ids


async def _one(
    name: str, config: Config, keys: KeyStore, http: httpx.AsyncClient
) -> ProviderCatalog | tuple[str, tuple[ModelInfo, ...]]:
    provider = config.providers[name]
    if not provider.enabled:
        return ProviderCatalog(name, "skipped", provider.note or "disabled in providers.yaml")
    cls = adapter_class(provider.adapter)
    if cls is None:
        return ProviderCatalog(name, "skipped", f"adapter {provider.adapter!r} not available")
    key = keys.get(provider.api_key_env) if provider.api_key_env else None
    if provider.api_key_env and not key:
        return ProviderCatalog(name, "skipped", f"no {provider.api_key_env}")
    adapter = cls(
        name=name,
        config=provider,
        api_key=key,
        http=http,
        timeout_s=config.settings.timeout_s,
    )
    try:
        return name, dedupe(await adapter.list_models())
    except NoListing as exc:
        return ProviderCatalog(name, "skipped", str(exc))
    except ProviderError as exc:
        return ProviderCatalog(name, "failed", f"{exc.outcome}: {exc}")


async def fetch_catalog(
    config: Config,
    keys: KeyStore,
    http: httpx.AsyncClient,
    ledger: Ledger,
    names: list[str] | None = None,
) -> list[ProviderCatalog]:
    """The catalog of `names` (default: every provider in the table), listed concurrently;
    successful listings are recorded in the ledger."""
    selected = list(names) if names else list(config.providers)
    answers = await asyncio.gather(*(_one(name, config, keys, http) for name in selected))
    marks: dict[tuple[str, str], Retired] = {
        (m.provider, m.model): m for m in retired_models(ledger)
    }
    out = []
    for answer in answers:
        if isinstance(answer, ProviderCatalog):
            out.append(answer)
            continue
        name, models = answer
        record_listing(
            ledger,
            name,
            (Listed(m.id, m.usd_per_mtok_input, m.usd_per_mtok_output) for m in models),
        )
        ids = {m.id for m in models}
        configured = tuple(
            Configured(
                kind,
                model,
                "present" if _listed(model, ids) else "missing",
                marks.get((name, model)),
            )
            for kind, names_ in config.providers[name].models.items()
            for model in names_
        )
        out.append(ProviderCatalog(name, "ok", None, models, configured))
    return out


@dataclass(frozen=True)
class PriceGap:
    """A model the table prices below what its provider's catalog published at the last
    listing: calls to it would be counted cheaper than they are billed."""

    provider: str
    model: str
    unit: Literal["input", "output"]
    table_usd_per_mtok: float
    published_usd_per_mtok: float
    listed_at: float

    @property
    def message(self) -> str:
        day = time.strftime("%Y-%m-%d", time.gmtime(self.listed_at))
        return (
            f"{self.provider}: {self.model} {self.unit} is priced ${self.table_usd_per_mtok:g}"
            f" per Mtok in the table, ${self.published_usd_per_mtok:g} in {self.provider}'s"
            f" catalog (listed {day}); spend would be under-counted: set"
            f" providers.{self.provider}.pricing.models.{self.model}"
        )


def underpriced(config: Config, ledger: Ledger) -> list[PriceGap]:
    """Every (provider, model, unit) of the table priced below the provider's published price,
    from the listings the ledger stored (`sched models`, `models-check`; OpenRouter and
    Together publish prices). An unset table price counts as 0: the call would be free to us."""
    gaps = []
    for name, provider in config.providers.items():
        published = published_prices(ledger, name)
        if not published:
            continue
        for model in dict.fromkeys(m for names in provider.models.values() for m in names):
            listed = published.get(model)
            if listed is None:
                continue
            prices = provider.pricing.for_model(model)
            units: tuple[tuple[Literal["input", "output"], float | None, float | None], ...] = (
                ("input", prices.usd_per_mtok_input, listed.usd_per_mtok_input),
                ("output", prices.usd_per_mtok_output, listed.usd_per_mtok_output),
            )
            for unit, ours, theirs in units:
                if theirs is not None and (ours or 0.0) < theirs:
                    gaps.append(PriceGap(name, model, unit, ours or 0.0, theirs, listed.listed_at))
    return gaps


__all__ = ["Configured", "PriceGap", "ProviderCatalog", "fetch_catalog", "underpriced"]
