"""The error taxonomy: every failure is classified once, where it happens, into one of these.

    SchedError                   anything the CLI turns into a one-line message and an exit code
    ├── ConfigError              providers.yaml / .env invalid (names file, key path, line)
    ├── InputError               bad input caught before any call (empty prompt, unknown provider)
    ├── LedgerError              quota.db unusable (corrupt, locked past the busy timeout)
    ├── OutputError              a served answer could not be written where asked (rescued)
    └── ProviderError            one provider failed one call; the dispatcher branches on the type
        ├── QuotaExhausted       out of quota or credit: skip until the window resets
        ├── RateLimited          slow down: cool down for the provider's retry hint
        ├── AuthFailed           bad or missing key: disable until the key changes
        ├── Transient            5xx, timeout, connection trouble: retry with backoff, then next
        ├── RejectedInput        the provider refused this input: next provider, health unaffected
        └── ModelUnavailable     the model is retired or unknown there: mark it, try the next model

Fallback logic branches on these types, never on message text. Messages never contain API keys:
adapters build them from status codes and provider error bodies, and `redact()` strips anything
that looks like a key before a message is stored or shown.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

# Key prefixes as the providers issue them (sk-, gsk_, hf_, ...) with their separator, so that
# words like "hf-inference" survive; plus any long opaque token.
_KEYLIKE = re.compile(
    r"\b(?:sk-|sk_|gsk_|pplx-|r8_|hf_|fw_|xai-|AIza)[A-Za-z0-9_\-]{8,}|\b[A-Za-z0-9_\-]{32,}\b"
)


def redact(text: str, *secrets: str | None) -> str:
    """Remove known secrets and key-shaped tokens: provider error bodies sometimes echo the key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


MAX_SHOWN = 60  # characters of a value a message quotes (a value is input: it may be huge)
MAX_CONFIG_MESSAGE = 600  # characters of a whole configuration error message


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """`repr(value)` for a message, cut to `limit` characters with an ellipsis and the length:
    a 10 MB string in a config must not become a 10 MB error line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text)} characters)"


def _finite(value: float | None, low: float | None = None) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    return number if low is None else max(number, low)


class SchedError(Exception):
    """Base of every error the CLI reports as a message rather than a traceback."""

    exit_code: ClassVar[int] = 2


class ConfigError(SchedError):
    """providers.yaml or the environment is invalid; the message names file, key path and line."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file, self.path, self.line = file, path, line
        where = ":".join(str(p) for p in (file, line) if p is not None)
        prefix = f"{where}: " if where else ""
        key = f"{path[:MAX_SHOWN]}: " if path else ""
        text = f"{prefix}{key}{message}"
        if len(text) > MAX_CONFIG_MESSAGE:  # the backstop; values are cut where they are quoted
            text = text[: MAX_CONFIG_MESSAGE - 1] + "…"
        super().__init__(text)


class InputError(SchedError):
    """The user's input is wrong before any provider is called; no quota is touched."""


class LedgerError(SchedError):
    """The quota ledger cannot be used (corrupt file, locked past the busy timeout, bad URL)."""


class OutputError(SchedError):
    """A served answer could not be written where asked; the message says where it is instead."""

    exit_code: ClassVar[int] = 1


class ProviderError(SchedError):
    """One provider failed one call. `outcome` is the stable name stored in the calls table."""

    outcome: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        resets_at: float | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        # The provider's own word, kept only when it is a number: NaN or infinity would make
        # every comparison false. The ledger bounds how far ahead either may block a provider.
        self.retry_after = _finite(retry_after, low=0.0)  # seconds to wait
        self.resets_at = _finite(resets_at)  # POSIX time the provider says its quota comes back
        super().__init__(message)


class QuotaExhausted(ProviderError):
    """Out of quota or credit: waiting seconds will not help, skip until the window resets."""

    outcome = "quota_exhausted"


class RateLimited(ProviderError):
    """Too many requests for now: cool down for the retry hint, then the provider is usable."""

    outcome = "rate_limited"


class AuthFailed(ProviderError):
    """The key is missing, wrong or revoked: disabled until the key changes."""

    outcome = "auth_failed"


class Transient(ProviderError):
    """A server error, timeout or broken connection: worth retrying, not the user's fault."""

    outcome = "transient"


class RejectedInput(ProviderError):
    """The provider refused this input (too long, wrong model): not a sign of bad health."""

    outcome = "rejected_input"


class ModelUnavailable(ProviderError):
    """The provider no longer serves (or never served) the model asked for: 404 model_not_found,
    400 model_decommissioned, 410 Gone, or the provider's own sunset text.

    Not a rejected input (no other input would help) and not bad health (the provider answered
    as documented): the (provider, model) pair is marked retired in the ledger, so no later task
    pays a call to learn the same thing, and the provider's next model is tried at once.
    """

    outcome = "model_unavailable"


OUTCOMES: tuple[str, ...] = (
    "ok",
    QuotaExhausted.outcome,
    RateLimited.outcome,
    AuthFailed.outcome,
    Transient.outcome,
    RejectedInput.outcome,
    ModelUnavailable.outcome,
)

__all__ = [
    "OUTCOMES",
    "AuthFailed",
    "ConfigError",
    "InputError",
    "LedgerError",
    "OutputError",
    "ModelUnavailable",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "RejectedInput",
    "SchedError",
    "Transient",
    "redact",
    "shown",
]
