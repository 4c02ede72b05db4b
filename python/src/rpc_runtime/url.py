"""Connection URLs, as docs/PROTOCOL.md ("Connection URLs") spells them,
turned into redis-py connection arguments.

``redis://[user:password@]host:port[/db]``, ``rediss://`` (TLS, with
``?ca=`` for a private CA and ``&client_cert=&client_key=`` for mutual TLS)
and ``redis+unix:///path/to/redis.sock``; ``?enqueue=auto|stream|intake``
says how a client adds jobs (see "The intake"). ``memory://`` (the Rust
runtime's in-process backend) and Redis Cluster URLs are refused with a
clear error: the Python runtime speaks to one Redis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from redis.asyncio.connection import parse_url

#: How a client adds jobs: ``XADD`` until refused, always ``XADD``, or
#: always the intake (``RPUSH P:{S}:intake``).
ENQUEUE_MODES = ("auto", "stream", "intake")


class InvalidUrl(ValueError):
    """A connection URL this runtime cannot use; the message says why (and
    never shows the password)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = redact(url)
        self.reason = reason
        super().__init__(f"invalid connection URL `{self.url}`: {reason}")


@dataclass(frozen=True)
class Target:
    """Where to connect: keyword arguments for a redis-py connection pool,
    and what the URL said about enqueueing."""

    #: For ``redis.asyncio.ConnectionPool(**kwargs)``.
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: ``auto``, ``stream`` or ``intake`` when the URL says; else None.
    enqueue: str | None = None
    #: The URL without its password, for messages.
    redacted: str = ""


def parse(url: str) -> Target:
    """Parses ``url``; raises :class:`InvalidUrl` for what cannot work."""
    if not isinstance(url, str) or not url:
        raise InvalidUrl(str(url), "a connection URL is a non-empty string such as redis://127.0.0.1:6379")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise InvalidUrl(url, "no scheme: expected redis://, rediss:// or redis+unix://")
    if scheme == "memory":
        raise InvalidUrl(
            url,
            "memory:// is the Rust runtime's in-process backend; the Python runtime needs "
            "a Redis (redis://, rediss:// or redis+unix://)",
        )
    if scheme in ("redis+cluster", "rediss+cluster"):
        raise InvalidUrl(url, "Redis Cluster is not supported by the Python runtime yet")
    if scheme not in ("redis", "rediss", "redis+unix"):
        raise InvalidUrl(url, f"unknown scheme `{scheme}`: expected redis://, rediss:// or redis+unix://")
    base, _, query = url.partition("?")
    ours: dict[str, str] = {}
    passed_on: list[str] = []
    for pair in (p for p in query.split("&") if p):
        name, _, value = pair.partition("=")
        if name in ("ca", "client_cert", "client_key", "enqueue"):
            if name in ours:
                raise InvalidUrl(url, f"`{name}` is given twice")
            ours[name] = unquote(value.replace("+", " "))
        else:
            passed_on.append(pair)
    enqueue = ours.get("enqueue")
    if enqueue is not None and enqueue not in ENQUEUE_MODES:
        raise InvalidUrl(url, f"enqueue={enqueue}: expected auto, stream or intake")
    rest = base + ("?" + "&".join(passed_on) if passed_on else "")
    if scheme == "redis+unix":
        rest = "unix" + rest[len("redis+unix") :]
    try:
        kwargs: dict[str, Any] = dict(parse_url(rest))
    except ValueError as e:
        raise InvalidUrl(url, str(e)) from None
    if scheme == "redis+unix" and not kwargs.get("path"):
        raise InvalidUrl(url, "a Unix socket URL names the socket: redis+unix:///path/to/redis.sock")
    ca, cert, key = ours.get("ca"), ours.get("client_cert"), ours.get("client_key")
    if (ca or cert or key) and scheme != "rediss":
        raise InvalidUrl(url, "ca, client_cert and client_key only make sense with rediss:// (TLS)")
    if (cert is None) != (key is None):
        raise InvalidUrl(url, "client_cert and client_key go together")
    for what, file in (("CA certificate", ca), ("client certificate", cert), ("client key", key)):
        if file is not None and not os.access(file, os.R_OK):
            raise InvalidUrl(url, f"cannot read the {what} `{file}`")
    if ca:
        kwargs["ssl_ca_certs"] = ca
    if cert and key:
        kwargs["ssl_certfile"] = cert
        kwargs["ssl_keyfile"] = key
    return Target(kwargs=kwargs, enqueue=enqueue, redacted=redact(url))


def redact(url: str) -> str:
    """``url`` without its password (``redis://user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for stop in "/?":
        i = rest.find(stop)
        if i != -1:
            end = min(end, i)
    at = rest.rfind("@", 0, end)
    if at == -1:
        return url
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user}:***@{rest[at + 1:]}" if colon else url
