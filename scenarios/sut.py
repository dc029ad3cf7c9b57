"""The system under test: its upstreams, its rendered config, its command and its probe.

Pure apart from reading a template file and the probes' single HTTP calls, so that the
template contract can be tested without starting anything. The contract (nginx and
HAProxy templates are written against it; keep the names): `listen` ("127.0.0.1:PORT"),
`listen_host`, `listen_port`, `upstreams` (dicts with `name`, `url`, `ws_url`, `host`,
`port`), `run_dir` (absolute path string), plus every key of the SUT's `options`. A
managed SUT's command items are templates over the same variables plus `port`, `config`
(the rendered config's path) and `python` (`command_context`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jinja2

from providers.remote import ProviderDef

from .api import REFERENCE_DEFAULTS, Sut, parse_ready, python_placeholder
from .errors import ConfigError

__all__ = [
    "SutPlan",
    "command_context",
    "plan_sut",
    "probe_ready",
    "proxy_upstream",
    "proxy_ws_upstream",
    "render_command",
    "render_template",
    "template_context",
    "upstreams_for",
]

LISTEN_HOST = "127.0.0.1"


def proxy_upstream(p: ProviderDef, provider_port: int | None) -> str:
    """The chaos-proxy listener's upstream for provider `p` (its `--listen` URL). A
    remote provider's path and query (where its key often is) go to the proxy, which
    never writes them, so the SUT only ever sees the listener's bare URL."""
    if p.kind != "remote":
        return f"http://127.0.0.1:{provider_port}"
    return _without_userinfo(p.url or "")


def proxy_ws_upstream(p: ProviderDef) -> str | None:
    """The `--listen-ws` URL of provider `p`: a remote provider's WebSocket endpoint,
    whose path the proxy gives to upgrades; None for the others."""
    if p.kind != "remote" or not p.ws_url:
        return None
    return _without_userinfo(p.ws_url)


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def upstreams_for(
    providers: Sequence[ProviderDef], listen_ports: Sequence[int]
) -> list[dict[str, Any]]:
    """The `upstreams` template variable: each provider as its chaos-proxy listener.

    Raises:
        ConfigError: a remote provider's ws_url is on another host than its url (one
            listener forwards both to one upstream).
    """
    out = []
    for i, (p, port) in enumerate(zip(providers, listen_ports, strict=True)):
        if p.kind == "remote" and p.ws_url:
            ws, http = urlsplit(p.ws_url), urlsplit(p.url or "")
            if ws.hostname != http.hostname or ws.port != http.port:
                raise ConfigError(
                    f"providers[{i}].ws_url must be on the host of its url: one chaos-proxy"
                    " listener forwards both"
                )
        out.append(
            {
                "name": p.name,
                "url": f"http://{LISTEN_HOST}:{port}/",
                "ws_url": f"ws://{LISTEN_HOST}:{port}/",
                "host": LISTEN_HOST,
                "port": port,
            }
        )
    return out


def template_context(
    port: int, upstreams: list[dict[str, Any]], run_dir: Path, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Every variable a SUT config template sees."""
    base = {
        "listen": f"{LISTEN_HOST}:{port}",
        "listen_host": LISTEN_HOST,
        "listen_port": port,
        "upstreams": upstreams,
        "run_dir": str(Path(run_dir).resolve()),
    }
    clash = sorted(set(options) & set(base))
    if clash:
        raise ConfigError(f"sut.options.{clash[0]} is set by the runner and cannot be given")
    return {**base, **options}


def render_template(path: Path, context: Mapping[str, Any]) -> str:
    """Renders a jinja2 template; an undefined variable is an error naming it.

    Raises:
        ConfigError: the file is missing, or the template is invalid or needs a
            variable that is not in `context`.
    """
    try:
        source = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"sut.template {path}: cannot read: {exc.strerror or exc}") from None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["tojson"] = json.dumps
    try:
        return env.from_string(source).render(**context)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"sut.template {path}: {exc}") from None


def command_context(context: Mapping[str, Any], port: int, config: Path | None) -> dict[str, Any]:
    """What a managed SUT's command items see: the config template's variables, plus
    `port`, `config` (the rendered config's path, "" without a template) and `python`."""
    return {**context, "port": port, "config": "" if config is None else str(config),
            "python": python_placeholder()}  # fmt: skip


def render_command(command: Sequence[Any], context: Mapping[str, Any]) -> list[str]:
    """The argv of a managed SUT: each string item rendered by jinja2 (then the older
    `{config}`, `{port}`, `{run_dir}`, `{python}` replaced), each `{each, as, args}`
    item expanded into its args once per element of the list `each` names.

    Raises:
        ConfigError: naming the item whose template fails (an undefined variable,
            `each` naming something that is not a list).
    """
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["tojson"] = json.dumps
    old = {"{config}": str(context["config"]), "{port}": str(context["port"]),
           "{run_dir}": str(context["run_dir"]), "{python}": str(context["python"])}  # fmt: skip

    def one(where: str, text: str, values: Mapping[str, Any]) -> str:
        try:
            out = env.from_string(text).render(**values)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for key, value in old.items():
            out = out.replace(key, value)
        return out

    argv: list[str] = []
    for i, item in enumerate(command):
        where = f"sut.command[{i}]"
        if isinstance(item, str):
            argv.append(one(where, item, context))
            continue
        items = context.get(item["each"])
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where}.each must name a list variable, got {item['each']!r}")
        args = [item["arg"]] if "arg" in item else list(item["args"])
        for element in items:
            values = {**context, item.get("as", "item"): element}
            argv += [one(where, arg, values) for arg in args]
    return argv


@dataclass(frozen=True)
class SutPlan:
    """How to start (or reach) the SUT: argv is None for an external one.

    `url` and `ws_url` are where the load goes (with the SUT's client `path`);
    `base_url` is the SUT's origin, for `GET` readiness probes."""

    url: str
    ws_url: str | None
    metrics_url: str | None
    argv: tuple[str, ...] | None = None
    config_path: Path | None = None
    config_text: str | None = None
    python_module: bool = False
    base_url: str | None = None


def plan_sut(sut: Sut, port: int | None, upstreams: list[dict[str, Any]], run_dir: Path) -> SutPlan:
    """Renders the SUT's config and its command line.

    Raises:
        ConfigError: the template fails, or the reference router rejects its config.
    """
    if sut.kind == "external":
        assert sut.url is not None
        parts = urlsplit(sut.url)
        url = parts._replace(path=sut.path).geturl() if sut.path else sut.url
        ws = sut.ws_url or ("ws" + url.removeprefix("http") if url.startswith("http://")
                            else None)  # fmt: skip
        origin = parts._replace(path="/", query="", fragment="").geturl()
        return SutPlan(url, ws, sut.metrics_url, base_url=origin)
    assert port is not None
    base = f"http://{LISTEN_HOST}:{port}"
    # The client path replaces `/` for WebSocket clients too, unless ws_path says
    # the WebSocket endpoint is elsewhere.
    ws_path = sut.path if sut.path and sut.ws_path == "/" else sut.ws_path
    ws = f"ws://{LISTEN_HOST}:{port}{ws_path}" if ws_path else None
    metrics = f"{base}{sut.metrics_path}" if sut.metrics_path else None
    url = f"{base}{sut.path or '/'}"
    context = template_context(port, upstreams, run_dir, sut.options)
    if sut.kind == "reference":
        from examples.reference_router import ConfigError as RouterConfigError
        from examples.reference_router import render_config

        values = {**REFERENCE_DEFAULTS, "max_attempts": len(upstreams), **context}
        try:
            text = render_config(**values)
        except (RouterConfigError, ValueError, jinja2.TemplateError) as exc:
            raise ConfigError(
                f"sut.options: the reference router rejects its config: {exc}"
            ) from None
        path = Path(run_dir) / "router.toml"
        argv = ("-m", "examples.reference_router", "--config", str(path))
        return SutPlan(url, ws, metrics, argv, path, text, python_module=True, base_url=f"{base}/")
    path = Path(run_dir) / sut.config_name
    text = render_template(Path(sut.template), context) if sut.template else None
    argv = render_command(sut.command, command_context(context, port, path if text else None))
    return SutPlan(url, ws, metrics, tuple(argv), path if text else None, text,
                   base_url=f"{base}/")  # fmt: skip


def probe_ready(sut: Sut, url: str, base_url: str | None = None) -> bool:
    """One readiness probe: `GET /path` on `base_url` (default: `url`) answers below
    500, or `rpc METHOD` on `url` (where the load goes) answers a JSON-RPC result."""
    how, what = parse_ready(sut.ready)
    try:
        if how == "GET":
            return httpx.get((base_url or url).rstrip("/") + what, timeout=1.0).status_code < 500
        body = {"jsonrpc": "2.0", "id": 1, "method": what, "params": []}
        response = httpx.post(url, json=body, timeout=1.0)
        return response.status_code == 200 and "result" in response.json()
    except (httpx.HTTPError, ValueError):
        return False
