"""The system under test: its spec (`Sut`, built by `reference_router`, `managed` or
`external`), its upstreams, its rendered config, its command and its probe.

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
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jinja2
import jinja2.meta

from providers.remote import ProviderDef, secrets_in_url

from .errors import ConfigError
from .fields import NAME, build, fail, known, number

__all__ = [
    "REFERENCE_DEFAULTS",
    "Sut",
    "SutPlan",
    "command_context",
    "external",
    "managed",
    "parse_ready",
    "plan_sut",
    "probe_ready",
    "proxy_upstream",
    "proxy_ws_upstream",
    "python_placeholder",
    "reference_router",
    "render_command",
    "render_template",
    "sut_from_dict",
    "template_context",
    "upstreams_for",
]

SUT_KINDS = ("reference", "managed", "external")
# The reference router's defaults the runner fills in when the scenario leaves them out
# (render_config needs them all). attempt_timeout_s 2 s: well under request_timeout_s,
# so a hung provider leaves time for another attempt.
REFERENCE_DEFAULTS: dict[str, Any] = {
    "strategy": "round_robin",
    "failover": True,
    "request_timeout_s": 5.0,
    "attempt_timeout_s": 2.0,
}
_PLACEHOLDERS = ("{config}", "{port}", "{run_dir}", "{python}")
# Template variables the runner sets (the config template's, plus `port`, `config` and
# `python` for the command); an option of the same name would shadow one.
RESERVED_OPTIONS = (
    "listen", "listen_host", "listen_port", "upstreams", "run_dir", "port", "config", "python",
)  # fmt: skip
# A command item that expands into one or more argv items per element of a list.
EACH_KEYS = ("each", "as", "arg", "args")
# Jinja2 markup, removed before looking for the old single-brace placeholders.
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
# SUT options whose values are credentials (masked wherever the run writes them).
_SECRET_OPTION = re.compile(r"(?i)(key|token|secret|passw|auth)")


@dataclass(frozen=True)
class Sut:
    """The system under test. Build it with `reference_router`, `managed` or `external`.

    Managed SUTs (`reference`, `managed`) are started by the runner on a free port with
    a config rendered from a jinja2 template whose variables are: `listen`
    ("127.0.0.1:PORT"), `listen_host`, `listen_port`, `upstreams` (list of dicts with
    `name`, `url`, `ws_url`, `host`, `port`: the chaos-proxy listener of each
    provider), `run_dir`, and every key of `options`.

    Args:
        kind: `reference` | `managed` | `external`.
        options: template variables (reference: `render_config`'s keys, e.g. `failover`,
            `strategy`, `circuit_breaker`).
        command: managed: argv. Each item is a jinja2 template over the config
            template's variables plus `port`, `config` (the rendered config's path) and
            `python` (this interpreter), e.g. `"--listen=127.0.0.1:{{ port }}"`; the
            older `{config}`, `{port}`, `{run_dir}`, `{python}` are replaced too. An
            item `{"each": "upstreams", "as": "u", "args": ["--upstream",
            "{{ u.name }}={{ u.url }}"]}` (or `"arg": "..."` for one) becomes those
            items once per element of the list variable `each` (`as` defaults to
            `item`): a list never has to be split out of one string.
        template: managed: the jinja2 config template's path (relative paths are
            resolved against the scenario file's folder by the loader).
        config_name: the rendered config's file name in the run directory.
        ready: readiness probe: `GET /path` (any status below 500) or `rpc METHOD`
            (a JSON-RPC answer without error).
        ready_timeout_s: how long the SUT may take to pass its probe.
        metrics_path: the Prometheus endpoint's path (managed), scraped each second.
        ws_path: the WebSocket path (managed); None: the SUT serves no WebSocket.
        url, ws_url, metrics_url: external: where the running router listens.
        listen_ports: external: the chaos-proxy listeners' ports, one per provider in
            order, so that a router started beforehand can be pointed at them; without
            them the router is taken to use providers of its own: faults cannot reach it
            and answers are not judged against the mock chain.
        stop_grace_s: SIGTERM, then SIGKILL after this long.
        path: the client path (`/v1/KEY`): the load, HTTP and WebSocket, goes to the
            SUT's URL with this path instead of `/` (an external URL's path is
            replaced by it). Treated as a key: masked in every file the run writes.
    """

    kind: str = "reference"
    options: Mapping[str, Any] = field(default_factory=dict)
    command: tuple[str | Mapping[str, Any], ...] = ()
    template: str | None = None
    config_name: str = "sut.conf"
    ready: str = "GET /health"
    ready_timeout_s: float = 30.0
    metrics_path: str | None = "/metrics"
    ws_path: str | None = "/"
    url: str | None = None
    ws_url: str | None = None
    metrics_url: str | None = None
    stop_grace_s: float = 5.0
    listen_ports: tuple[int, ...] = ()
    path: str | None = None

    def __post_init__(self) -> None:
        # TOML has no null: an empty path there means "none".
        for name in ("metrics_path", "ws_path", "path"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)

    def secrets(self) -> list[str]:
        """Every credential of the SUT: keys in its URLs, its client `path`, and the
        values of options named like a credential (`api_key`, `auth_token`, ...)."""
        out: list[str] = []
        for url in (self.url, self.ws_url, self.metrics_url):
            if isinstance(url, str):
                out += secrets_in_url(url)
        if isinstance(self.path, str):
            # The whole path is the key (`/KEY`, `/v1/KEY`); its key-like segments
            # too, should the SUT's log show one without the rest.
            out += [self.path, self.path.strip("/"), *secrets_in_url(f"http://h{self.path}")]
        return out + _option_secrets(self.options)

    def check(self, where: str = "sut") -> None:
        if self.kind not in SUT_KINDS:
            raise fail(f"{where}.kind", f"must be one of {', '.join(SUT_KINDS)}", self.kind)
        if not isinstance(self.options, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in self.options
        ):
            raise ConfigError(f"{where}.options must map identifiers to values")
        for key in RESERVED_OPTIONS:
            if key in self.options:
                raise ConfigError(f"{where}.options.{key} is set by the runner and cannot be given")
        number(f"{where}.ready_timeout_s", self.ready_timeout_s)
        number(f"{where}.stop_grace_s", self.stop_grace_s)
        parse_ready(self.ready, f"{where}.ready")
        for name in ("metrics_path", "ws_path", "path"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value.startswith("/")):
                raise fail(f"{where}.{name}", "must be a path starting with '/' or unset", value)
        if self.path is not None and (re.search(r"[\s#]", self.path) or self.path == "/"):
            raise ConfigError(
                f"{where}.path must be a URL path without spaces or '#', other than '/'"
            )
        if self.kind == "external":
            if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
                raise fail(
                    f"{where}.url", "must be the http(s) URL of the running router", self.url
                )
            if self.ws_url is not None and not str(self.ws_url).startswith(("ws://", "wss://")):
                raise fail(f"{where}.ws_url", "must be a ws(s) URL", self.ws_url)
            if self.metrics_url is not None and not str(self.metrics_url).startswith("http"):
                raise fail(f"{where}.metrics_url", "must be an http(s) URL", self.metrics_url)
            if self.command or self.template:
                raise ConfigError(f"{where}.command and .template are for kind 'managed' only")
            for i, port in enumerate(self.listen_ports):
                if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                    raise fail(f"{where}.listen_ports[{i}]", "must be a port number", port)
            if len(set(self.listen_ports)) != len(self.listen_ports):
                raise fail(f"{where}.listen_ports", "must be distinct", self.listen_ports)
            return
        for name in ("url", "ws_url", "metrics_url"):
            if getattr(self, name) is not None:
                raise ConfigError(f"{where}.{name} is for kind 'external' only")
        if self.listen_ports:
            raise ConfigError(f"{where}.listen_ports is for kind 'external' only")
        if self.kind == "reference":
            if self.command or self.template:
                raise ConfigError(
                    f"{where}.command and .template are for kind 'managed'; the reference"
                    " router uses its own"
                )
            return
        if not self.command or not isinstance(self.command, tuple | list):
            raise fail(f"{where}.command", "must be a non-empty list of strings", self.command)
        if self.template is not None and not isinstance(self.template, str):
            raise fail(f"{where}.template", "must be a path", self.template)
        used: set[str] = set()
        variables = {*RESERVED_OPTIONS, *self.options, *jinja2.Environment().globals}
        for i, item in enumerate(self.command):
            names = _check_command_item(f"{where}.command[{i}]", item)
            # Caught here, not when the run starts: --dry-run shows a typo too.
            if unknown := sorted(names - variables):
                raise ConfigError(
                    f"{where}.command[{i}] uses {unknown[0]!r}, which is neither a variable"
                    f" of the runner nor an option (known: {', '.join(sorted(variables))})"
                )
            used |= names
        if self.template is None and "config" in used:
            raise ConfigError(f"{where}.command uses {{config}} but {where}.template is unset")
        if not NAME.match(self.config_name):
            raise fail(f"{where}.config_name", "must be a plain file name", self.config_name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.options:
            out["options"] = dict(self.options)
        if self.kind == "external":
            out["url"] = self.url
            for name in ("ws_url", "metrics_url"):
                if getattr(self, name) is not None:
                    out[name] = getattr(self, name)
            if self.listen_ports:
                out["listen_ports"] = list(self.listen_ports)
        else:
            if self.kind == "managed":
                out["command"] = [a if isinstance(a, str) else dict(a) for a in self.command]
                if self.template is not None:
                    out["template"] = self.template
                out["config_name"] = self.config_name
            out["metrics_path"] = self.metrics_path or ""
            out["ws_path"] = self.ws_path or ""
        out["ready"] = self.ready
        out["ready_timeout_s"] = self.ready_timeout_s
        out["stop_grace_s"] = self.stop_grace_s
        if self.path is not None:
            out["path"] = self.path
        return {k: v for k, v in out.items() if v is not None}


def _option_secrets(value: Any, secret: bool = False) -> list[str]:
    """The string values under every option key that names a credential."""
    if isinstance(value, Mapping):
        out: list[str] = []
        for k, v in value.items():
            out += _option_secrets(v, secret or bool(_SECRET_OPTION.search(str(k))))
        return out
    if isinstance(value, list | tuple):
        return [s for v in value for s in _option_secrets(v, secret)]
    return [value] if secret and isinstance(value, str) else []


def _check_template(where: str, text: Any) -> set[str]:
    """The variables a command template uses; a syntax error or a stray single-brace
    placeholder is a ConfigError naming the item."""
    if not isinstance(text, str) or not text:
        raise fail(where, "must be a non-empty string", text)
    try:
        names = set(jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(text)))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where} is not a valid jinja2 template: {exc}") from None
    for brace in re.findall(r"\{[^}]*\}", _JINJA.sub("", text)):
        if brace not in _PLACEHOLDERS:
            raise fail(
                where,
                f"may use only jinja2 ({{{{ port }}}}) or the placeholders"
                f" {', '.join(_PLACEHOLDERS)}",
                text,
            )
        names.add(brace.strip("{}"))
    return names


def _check_command_item(where: str, item: Any) -> set[str]:
    if isinstance(item, str):
        return _check_template(where, item)
    if not isinstance(item, Mapping):
        raise fail(where, "must be a string or an {each, as, args} table", item)
    known(where, item, EACH_KEYS)
    each, loop = item.get("each"), item.get("as", "item")
    for key, name in (("each", each), ("as", loop)):
        if not isinstance(name, str) or not name.isidentifier():
            raise fail(f"{where}.{key}", "must name a variable", name)
    if ("arg" in item) == ("args" in item):
        raise ConfigError(f"{where} needs exactly one of arg or args")
    args = [item["arg"]] if "arg" in item else item["args"]
    if not isinstance(args, list | tuple) or not args:
        raise fail(f"{where}.args", "must be a non-empty list of strings", args)
    used = {each}
    for j, arg in enumerate(args):
        used |= _check_template(f"{where}.{'arg' if 'arg' in item else f'args[{j}]'}", arg)
    return used - {loop}


def parse_ready(text: Any, where: str = "sut.ready") -> tuple[str, str]:
    """`GET /path` -> ("GET", "/path"); `rpc eth_chainId` -> ("rpc", "eth_chainId")."""
    parts = text.split() if isinstance(text, str) else []
    if len(parts) == 2 and parts[0] == "GET" and parts[1].startswith("/"):
        return "GET", parts[1]
    if len(parts) == 2 and parts[0] == "rpc" and re.fullmatch(r"[A-Za-z0-9_]+", parts[1]):
        return "rpc", parts[1]
    raise fail(where, "must read `GET /path` or `rpc METHOD`", text)


def reference_router(**options: Any) -> Sut:
    """The bundled reference router, managed; `options` are `render_config`'s keys
    (`failover`, `strategy`, `request_timeout_s`, `circuit_breaker`, `rate_limit`, ...)."""
    return Sut("reference", options)


def managed(
    command: Sequence[str],
    *,
    template: str | Path | None = None,
    config_name: str = "sut.conf",
    ready: str = "rpc eth_chainId",
    metrics_path: str | None = None,
    ws_path: str | None = None,
    path: str | None = None,
    **options: Any,
) -> Sut:
    """A router the runner starts: `command` rendered as jinja2 over the template's
    variables plus `port`, `config` (the rendered `template`'s path) and `python`
    (`{config}`, `{port}`, `{run_dir}`, `{python}` work too); `options` go to both."""
    return Sut(
        "managed",
        options,
        tuple(command),
        None if template is None else str(template),
        config_name,
        ready,
        metrics_path=metrics_path,
        ws_path=ws_path,
        path=path,
    )


def external(
    url: str,
    *,
    ws_url: str | None = None,
    metrics_url: str | None = None,
    listen_ports: Sequence[int] = (),
    ready: str = "rpc eth_chainId",
    path: str | None = None,
) -> Sut:
    """A router already running at `url`; the runner only probes it and loads it. With
    `listen_ports` (one per provider) the chaos-proxy listeners take those ports, for a
    router configured beforehand to use them as its upstreams."""
    return Sut(
        "external",
        {},
        ready=ready,
        url=url,
        ws_url=ws_url,
        metrics_url=metrics_url,
        listen_ports=tuple(listen_ports),
        path=path,
    )


def sut_from_dict(
    data: Mapping[str, Any], *, base_dir: Path | None = None, where: str = "sut"
) -> Sut:
    """The `Sut` a `[sut]` table describes. With `base_dir` (the file's folder), a
    relative `template`, and each command item naming a file that exists there, are
    made absolute: a file's SUT works from whatever directory `battle` runs in.

    Raises:
        ConfigError: naming the first bad field.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table/object, got {type(data).__name__}")
    sut = dict(data)
    for key in ("command", "listen_ports"):
        if isinstance(sut.get(key), list):
            sut[key] = tuple(sut[key])
    if base_dir is not None:
        template = sut.get("template")
        if isinstance(template, str) and not Path(template).is_absolute():
            sut["template"] = str((base_dir / template).resolve())
        if isinstance(sut.get("command"), tuple):
            sut["command"] = tuple(_relative_file(a, base_dir) for a in sut["command"])
    return build(Sut, sut, where)


def _relative_file(arg: Any, base_dir: Path) -> Any:
    # Only plain words that name a file next to the SUT's file (`router.py`,
    # `conf/r.toml`): flags, templates and anything else are left as written.
    if not isinstance(arg, str) or arg.startswith("-") or "{" in arg or Path(arg).is_absolute():
        return arg
    candidate = base_dir / arg
    return str(candidate.resolve()) if candidate.is_file() else arg


def python_placeholder() -> str:
    """What `{python}` in a managed SUT's command becomes: this interpreter."""
    return sys.executable


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
