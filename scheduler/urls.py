"""URLs as the product shows and compares them: credentials masked, origins compared.

A `base_url` may carry a user and password (`https://user:pass@proxy/v1`) and a ledger URL a
PostgreSQL password (`postgresql://sched:secret@db/ledger` or `?password=secret`). Such a URL is
shown in error messages, `sched config check`, trace lines and reports, so every place that shows
one calls `mask_url` (never its own split on "@"). `origin` is what the HTTP layer compares to
decide whether a redirect leaves the provider (scheme, host and port, as browsers do).
"""

from __future__ import annotations

from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a secret in the APIs and database drivers this product speaks to
# (Google's `?key=`, libpq's `?password=`, OAuth's `access_token`), compared case-insensitively.
SECRET_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "auth",
        "auth_token",
        "token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "sslpassword",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_SHOWN_URL = 200  # characters of a URL in a message; a URL is input too


def is_secret_param(name: str) -> bool:
    return name.strip().lower() in SECRET_PARAMS


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # an unbalanced "[" in the host, say
        return None


def mask_url(url: str) -> str:
    """`url` with its password (or the whole user part) and secret query values masked:
    `postgresql://sched:***@db/ledger?password=***`. Something that is not a URL is cut to
    MAX_SHOWN_URL characters and has anything after an "@" masked, so it never shows more."""
    parts = _split(url)
    if parts is None or not parts.scheme or not parts.netloc:
        if "@" in url:
            url = f"{MASK}@{url.rsplit('@', 1)[1]}"
        return url[:MAX_SHOWN_URL]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0] if ":" in userinfo else MASK
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    # Piece by piece, so the parameters that are not secret are shown exactly as written.
    pieces = parts.query.split("&") if parts.query else []
    query = "&".join(
        f"{piece.split('=', 1)[0]}={MASK}"
        if is_secret_param(unquote(piece.split("=", 1)[0]))
        else piece
        for piece in pieces
    )
    shown = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return shown[:MAX_SHOWN_URL]


def origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int | None]:
    """The (scheme, host, port) triple of a URL, with the scheme's default port filled in."""
    scheme = scheme.lower()
    return scheme, host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def show_origin(value: tuple[str, str, int | None]) -> str:
    """`https://host:port` of an origin triple, for a message."""
    scheme, host, port = value
    default = _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


__all__ = [
    "MASK",
    "MAX_SHOWN_URL",
    "SECRET_PARAMS",
    "is_secret_param",
    "mask_url",
    "origin",
    "show_origin",
]
