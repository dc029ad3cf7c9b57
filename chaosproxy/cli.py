"""`python -m chaosproxy`: parse and validate the command line, then run the proxy.

    python -m chaosproxy --proxy-id P0 --run-dir D --control-port C \
        --listen NAME=PORT=UPSTREAM_URL [--listen ...] [--faults FILE.json] [--start-now]

`--start-now` starts the fault timeline (t0) as soon as the proxy is ready, for
standalone use (`battle proxy`); a scenario runner instead POSTs /start with its t0.

Exit codes: 0 clean shutdown (SIGTERM / SIGINT); 1 a listener or the control API could
not bind; 2 bad arguments or fault file, reported in one line naming the field.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from chaosproxy.errors import ConfigError
from chaosproxy.faults import FaultSpec, load_faults

__all__ = ["Config", "Listener", "main", "parse_args", "parse_listen"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_URL_RE = re.compile(
    r"^(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+)(?::(?P<port>\d+))?/?$"
)


@dataclass(frozen=True, slots=True)
class Listener:
    """One provider: the proxy listens on 127.0.0.1:`port` and forwards to `upstream`."""

    name: str
    port: int
    upstream: str

    @property
    def mode(self) -> str:
        """The mitmproxy mode spec of this listener."""
        return f"reverse:{self.upstream}@127.0.0.1:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    proxy_id: str
    run_dir: Path
    control_port: int
    listeners: tuple[Listener, ...]
    faults: tuple[FaultSpec, ...]
    start_now: bool = False


def _port(where: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{where} must be an integer port, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where} must be in [1, 65535], got {port}")
    return port


def parse_listen(spec: str) -> Listener:
    """Parses ``NAME=PORT=UPSTREAM_URL``; the URL is ``http(s)://host[:port]`` (no path:
    mitmproxy's reverse mode forwards the client's path unchanged)."""
    parts = spec.split("=", 2)
    if len(parts) != 3:
        raise ConfigError(f"--listen must be NAME=PORT=UPSTREAM_URL, got {spec!r}")
    name, port_text, url = parts
    if not _NAME_RE.match(name):
        raise ConfigError(f"--listen NAME must match [A-Za-z0-9_-]+, got {name!r}")
    port = _port(f"--listen {name}: PORT", port_text)
    m = _URL_RE.match(url)
    if not m:
        raise ConfigError(
            f"--listen {name}: UPSTREAM_URL must be http(s)://host[:port] without a path, "
            f"got {url!r}"
        )
    if m.group("port") is not None:
        _port(f"--listen {name}: UPSTREAM_URL port", m.group("port"))
    return Listener(name, port, url.rstrip("/"))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, as every configuration error (DESIGN.md: exit 2, one clear line).
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m chaosproxy",
        description="Chaos proxy: one reverse listener "
        "per provider, faults on a schedule, every exchange recorded.",
    )
    p.add_argument("--proxy-id", required=True, help="name of this proxy process in shards")
    p.add_argument("--run-dir", required=True, type=Path, help="the run directory")
    p.add_argument("--control-port", required=True, help="control API port on 127.0.0.1")
    p.add_argument(
        "--listen",
        action="append",
        required=True,
        metavar="NAME=PORT=UPSTREAM_URL",
        help="a provider listener; repeat for each provider",
    )
    p.add_argument("--faults", type=Path, help="fault file (JSON list)")
    p.add_argument("--start-now", action="store_true", help="start the fault timeline when ready")
    return p


def parse_args(argv: Sequence[str]) -> Config:
    """Validates the command line and the fault file.

    Raises:
        ConfigError: naming the bad argument or fault field.
    """
    args = _parser().parse_args(list(argv))
    proxy_id = args.proxy_id
    if not proxy_id or any(c in proxy_id for c in "/. "):
        raise ConfigError(f"--proxy-id must be non-empty without '/', '.' or ' ', got {proxy_id!r}")
    control_port = _port("--control-port", args.control_port)
    listeners = tuple(parse_listen(s) for s in args.listen)
    names: set[str] = set()
    ports = {control_port: "--control-port"}
    for lst in listeners:
        if lst.name in names:
            raise ConfigError(f"--listen name {lst.name!r} is given twice")
        names.add(lst.name)
        if lst.port in ports:
            raise ConfigError(
                f"--listen {lst.name}: PORT {lst.port} is also used by {ports[lst.port]}"
            )
        ports[lst.port] = f"--listen {lst.name}"
    run_dir: Path = args.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} exists and is not a directory")
    faults: tuple[FaultSpec, ...] = ()
    if args.faults is not None:
        faults = tuple(load_faults(args.faults, names))
    return Config(proxy_id, run_dir, control_port, listeners, faults, args.start_now)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the chaos proxy until SIGTERM / SIGINT; returns the exit code."""
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
    except ConfigError as e:
        print(f"chaosproxy: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    # Imported here so that `--help` and argument errors do not pay for mitmproxy.
    import asyncio

    from chaosproxy.app import serve

    try:
        # uvloop's C transports cut the per-exchange cost of mitmproxy's I/O (see
        # bench/chaosproxy_throughput.py); the standard loop when it is not installed.
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(serve(config))
    except ConfigError as e:
        print(f"chaosproxy: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
