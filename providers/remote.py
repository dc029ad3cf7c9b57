"""Provider definitions (mock, anvil, remote URL) and the redaction of their secrets.

A remote provider is reached by URL (``https`` and ``wss``, or ``http``/``ws`` on
loopback) with optional headers; its API key may sit in the URL's path (Infura
``/v3/<key>``, Alchemy ``/v2/<key>``, QuickNode, Ankr), its query (``?apikey=``,
``?dkey=``), its user-info, or a header (``Authorization``, ``X-Api-Key``). No file a
run writes may contain it: :meth:`ProviderDef.public` gives the form for
``scenario.json``, and a :class:`Redactor` built from every definition of the run
scrubs any text (logs, shards, reports) of each secret it found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "KINDS",
    "MASK",
    "ProviderDef",
    "Redactor",
    "parse_provider",
    "redact_url",
    "secrets_in_headers",
    "secrets_in_url",
]

KINDS = ("mock", "anvil", "remote")
MASK = "***"

# Query parameter names that carry credentials (Infura, Alchemy, dRPC's dkey, Ankr, …).
_SECRET_QUERY = re.compile(r"(?i)^(.*key.*|.*token.*|.*secret.*|auth.*|password|pass|sig)$")
_SECRET_HEADER = re.compile(r"(?i)(authorization|key|token|secret|auth|cookie)")
# A path segment that looks like a credential: 16+ characters of a key alphabet, with
# both letters and digits (Infura's 32 hex digits, Alchemy's 32 base62, Ankr's 64 hex,
# QuickNode's 40 hex). Words such as "mainnet" or "v3" never match.
_KEYLIKE = re.compile(r"^[A-Za-z0-9_\-]{16,}$")
_SCHEMES = ("http", "https", "ws", "wss")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _keylike(segment: str) -> bool:
    return (
        bool(_KEYLIKE.match(segment))
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
    )


def secrets_in_url(url: str) -> list[str]:
    """The credential substrings of ``url``: user-info, key-like path segments, and the
    values of credential query parameters."""
    parts = urlsplit(url)
    found: list[str] = []
    if parts.username:
        found.append(parts.username)
    if parts.password:
        found.append(parts.password)
    found += [seg for seg in parts.path.split("/") if _keylike(seg)]
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if value and (_SECRET_QUERY.match(name) or _keylike(value)):
            found.append(value)
    return found


def secrets_in_headers(headers: Mapping[str, str]) -> list[str]:
    """Values of credential headers; for ``Authorization: Bearer X`` both the value and X."""
    found: list[str] = []
    for name, value in headers.items():
        if value and _SECRET_HEADER.search(name):
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token)
    return found


def redact_url(url: str) -> str:
    """``url`` with every credential replaced by ``***``."""
    return Redactor(secrets_in_url(url)).text(url)


class Redactor:
    """Replaces each known secret in text or JSON-like values with ``***``.

    Longer secrets are replaced first, so one that contains another is fully masked.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        # Short strings would mask ordinary text ("1", "eth"): keys are never this short.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self.secrets)) if self.secrets else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string (keys too) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def file(self, path: Path) -> bool:
        """Redact a text file in place; True if it changed. Binary files are left alone."""
        if self._pattern is None:
            return False
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            return False
        new = self.text(text)
        if new == text:
            return False
        path.write_text(new)
        return True

    def tree(self, root: Path) -> list[Path]:
        """Redact every text file under ``root``; the files that changed."""
        return [p for p in sorted(root.rglob("*")) if p.is_file() and self.file(p)]


@dataclass(frozen=True)
class ProviderDef:
    """One provider of a scenario.

    Args:
        name: unique in the scenario; the chaos proxy's listener name.
        kind: ``mock`` (started by the runner), ``anvil`` (started by the runner) or
            ``remote`` (reached at ``url``).
        url: remote only: the HTTP(S) JSON-RPC endpoint.
        ws_url: remote only, optional: the WS(S) endpoint.
        headers: remote only: sent with every request (API keys go here or in the URL).
        behaviour: mock only: the JSON spec of :func:`providers.behaviour.parse_behaviour`.
    """

    name: str
    kind: str = "mock"
    url: str | None = None
    ws_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    behaviour: Mapping[str, Any] | None = None

    def secrets(self) -> list[str]:
        out: list[str] = []
        for u in (self.url, self.ws_url):
            if u:
                out += secrets_in_url(u)
        return out + secrets_in_headers(self.headers)

    def public(self) -> dict[str, Any]:
        """The definition as ``scenario.json`` records it: every secret masked."""
        r = Redactor(self.secrets())
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.url:
            out["url"] = r.text(self.url)
        if self.ws_url:
            out["ws_url"] = r.text(self.ws_url)
        if self.headers:
            out["headers"] = {k: r.text(v) for k, v in self.headers.items()}
        if self.behaviour is not None:
            out["behaviour"] = dict(self.behaviour)
        return out


def _check_url(value: Any, where: str, schemes: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a URL string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        shown = redact_url(value)
        raise ValueError(f"{where} must be a {'/'.join(schemes)} URL with a host, got {shown!r}")
    secure = parts.scheme in ("https", "wss")
    if not secure and parts.hostname not in _LOOPBACK:
        # Keys must not travel in clear text; plain http/ws is for local nodes.
        raise ValueError(
            f"{where} must use https/wss for a non-loopback host, got {redact_url(value)!r}"
        )
    return value


def parse_provider(spec: Any, where: str = "providers[0]") -> ProviderDef:
    """A :class:`ProviderDef` from its JSON/TOML form.

    Raises:
        ValueError: naming the bad field; URLs in messages are redacted.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be an object, got {type(spec).__name__}")
    known = {"name", "kind", "url", "ws_url", "headers", "behaviour"}
    extra = sorted(set(spec) - known)
    if extra:
        raise ValueError(f"{where}.{extra[0]} is not a known key")
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name):
        raise ValueError(
            f"{where}.name must be 1-40 letters, digits, '_', '.' or '-', got {name!r}"
        )
    kind = spec.get("kind", "remote" if "url" in spec else "mock")
    if kind not in KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind != "remote":
        for key in ("url", "ws_url", "headers"):
            if key in spec:
                raise ValueError(f"{where}.{key} is only for kind 'remote'")
        behaviour = spec.get("behaviour")
        if behaviour is not None:
            if kind != "mock":
                raise ValueError(f"{where}.behaviour is only for kind 'mock'")
            from providers.behaviour import parse_behaviour

            parse_behaviour(behaviour, f"{where}.behaviour")
        return ProviderDef(name, kind, behaviour=behaviour)
    if "behaviour" in spec:
        raise ValueError(f"{where}.behaviour is only for kind 'mock'")
    url = _check_url(spec.get("url"), f"{where}.url", ("http", "https"))
    ws_url = spec.get("ws_url")
    if ws_url is not None:
        ws_url = _check_url(ws_url, f"{where}.ws_url", ("ws", "wss"))
    headers = spec.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError(f"{where}.headers must be an object of strings")
    return ProviderDef(name, "remote", url, ws_url, dict(headers))
