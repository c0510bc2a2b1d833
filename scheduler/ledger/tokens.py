"""Gateway tokens: who may call `sched serve`, and how much each may spend.

A token's secret is shown once, when it is created; the ledger keeps only its SHA-256, so a copy
of quota.db lets nobody call the gateway. Lookups hash the presented secret and find the row by
that hash (an index), which also makes the comparison independent of how much of a guess is
right. A token's limits become `CallerLimits`, held in the provider's reservation transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

from scheduler.errors import InputError
from scheduler.ledger.store import CallerLimits, Ledger
from scheduler.windows import WindowSpec

SECRET_PREFIX = "sk-sched-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_COLUMNS = (
    "name, created_at, expires_at, revoked_at, daily_usd, monthly_usd, requests_per_day, models,"
    " admin"
)


@dataclass(frozen=True)
class Token:
    """One token's row, without its secret (which the ledger never had)."""

    name: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None
    requests_per_day: int | None = None
    models: tuple[str, ...] | None = None  # allowed routes; None: any
    admin: bool = False  # may read the status page

    def usable(self, now: float) -> str | None:
        """None when the token may be used now, else why not."""
        if self.revoked_at is not None:
            return f"token {self.name!r} was revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return f"token {self.name!r} has expired"
        return None

    def allows(self, route: str) -> bool:
        """Whether the token may use `route` (`auto`, `free`, `PROVIDER/MODEL`, ...); a
        provider name in the list allows every model of that provider."""
        if self.models is None:
            return True
        provider = route.split("/", 1)[0]
        return route in self.models or provider in self.models

    @property
    def limits(self) -> CallerLimits:
        return CallerLimits(
            owner=f"token:{self.name}",
            requests_per_day=self.requests_per_day,
            daily_usd=self.daily_usd,
            monthly_usd=self.monthly_usd,
        )


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    ledger: Ledger,
    name: str,
    *,
    daily_usd: float | None = None,
    monthly_usd: float | None = None,
    requests_per_day: int | None = None,
    models: tuple[str, ...] | None = None,
    expires_at: float | None = None,
    admin: bool = False,
    now: float | None = None,
) -> str:
    """Store a new token and return its secret (the only time it exists outside the client)."""
    if not _NAME.match(name):
        raise InputError(
            f"token name {name[:80]!r}: use letters, digits, '.', '_' or '-' (at most 64)"
        )
    now = time.time() if now is None else now
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with ledger.transaction() as conn:
        taken = conn.execute("SELECT 1 FROM gateway_tokens WHERE name = ?", (name,)).fetchone()
        if taken is not None:
            raise InputError(f"a token named {name!r} exists; revoke it or pick another name")
        conn.execute(
            "INSERT INTO gateway_tokens (name, secret_hash, created_at, expires_at, daily_usd,"
            " monthly_usd, requests_per_day, models, admin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                secret_hash(secret),
                now,
                expires_at,
                daily_usd,
                monthly_usd,
                requests_per_day,
                json.dumps(list(models)) if models is not None else None,
                int(admin),
            ),
        )
    return secret


def find_token(ledger: Ledger, secret: str) -> Token | None:
    """The token whose secret this is, revoked or not; None for an unknown secret."""
    rows = ledger.read(
        f"SELECT {_COLUMNS} FROM gateway_tokens WHERE secret_hash = ?", (secret_hash(secret),)
    )
    return _token(rows[0]) if rows else None


def list_tokens(ledger: Ledger) -> list[Token]:
    return [
        _token(row) for row in ledger.read(f"SELECT {_COLUMNS} FROM gateway_tokens ORDER BY name")
    ]


def any_active(ledger: Ledger, now: float | None = None) -> bool:
    """Whether the gateway must ask for a token (some token exists that is not revoked)."""
    now = time.time() if now is None else now
    rows = ledger.read(
        "SELECT COUNT(*) FROM gateway_tokens WHERE revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > ?)",
        (now,),
    )
    return bool(rows and rows[0][0])


def revoke_token(ledger: Ledger, name: str, *, now: float | None = None) -> bool:
    """Revoke `name` (kept for its history); False when there is no such active token."""
    now = time.time() if now is None else now
    with ledger.transaction() as conn:
        changed = conn.execute(
            "UPDATE gateway_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (now, name),
        ).rowcount
    return bool(changed)


@dataclass(frozen=True)
class TokenUse:
    """What a token used in the current UTC day and month (settled and in flight)."""

    requests_today: float
    usd_today: float
    usd_month: float


def token_use(ledger: Ledger, name: str, *, now: float | None = None) -> TokenUse:
    now = time.time() if now is None else now
    day_start = WindowSpec("day").bounds(now)[0]
    month_start = WindowSpec("month").bounds(now)[0]
    rows = ledger.read(
        "SELECT rule, window_start, used + reserved FROM usage_windows WHERE provider = ?",
        (f"token:{name}",),
    )
    found = {(str(rule), int(start)): float(amount) for rule, start, amount in rows}  # type: ignore[call-overload,arg-type]
    return TokenUse(
        requests_today=found.get(("requests/day", day_start), 0.0),
        usd_today=found.get(("budget/day", day_start), 0.0),
        usd_month=found.get(("budget/month", month_start), 0.0),
    )


def _token(row: tuple[object, ...]) -> Token:
    name, created, expires, revoked, daily, monthly, requests, models, admin = row
    return Token(
        name=str(name),
        created_at=float(created),  # type: ignore[arg-type]
        expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        revoked_at=None if revoked is None else float(revoked),  # type: ignore[arg-type]
        daily_usd=None if daily is None else float(daily),  # type: ignore[arg-type]
        monthly_usd=None if monthly is None else float(monthly),  # type: ignore[arg-type]
        requests_per_day=None if requests is None else int(requests),  # type: ignore[call-overload]
        models=None if models is None else tuple(json.loads(str(models))),
        admin=bool(admin),
    )


__all__ = [
    "SECRET_PREFIX",
    "Token",
    "TokenUse",
    "any_active",
    "create_token",
    "find_token",
    "list_tokens",
    "revoke_token",
    "secret_hash",
    "token_use",
]
