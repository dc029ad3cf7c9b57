"""`python -m chaosproxy`: parse and validate the command line, then run the proxy.

    python -m chaosproxy --proxy-id P0 --run-dir D --control-port C \
        --listen NAME=PORT=UPSTREAM_URL [--listen ...] [--listen-ws NAME=WS_URL ...] \
        [--faults FILE.json] [--start-now]

An upstream URL may carry a path and query (``https://mainnet.example/v3/KEY``): the
listener forwards to it, and `--listen-ws` gives the WebSocket endpoint's path on the
same host (``wss://mainnet.example/ws/v3/KEY``). The path and query are treated as
secret: nothing the proxy writes or prints contains them (see `Listener.redacted`).

`--start-now` starts the fault timeline (t0) as soon as the proxy is ready, for
standalone use (`battle proxy`); a scenario runner instead POSTs /start with its t0.

Exit codes: 0 clean shutdown (SIGTERM / SIGINT); 1 a listener or the control API could
not bind; 2 bad arguments or fault file, reported in one line naming the field.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from chaosproxy.config import Config, parse_listen, parse_port, with_ws_url
from chaosproxy.errors import ConfigError
from chaosproxy.faults import FaultSpec, load_faults

__all__ = ["main", "parse_args"]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


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
    p.add_argument(
        "--listen-ws",
        action="append",
        default=[],
        metavar="NAME=WS_URL",
        help="the WebSocket endpoint of listener NAME when its path differs from the URL's",
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
    control_port = parse_port("--control-port", args.control_port)
    listeners = tuple(parse_listen(s) for s in args.listen)
    for spec in args.listen_ws:
        name, sep, url = spec.partition("=")
        index = next((i for i, lst in enumerate(listeners) if lst.name == name), None)
        if not sep or index is None:
            raise ConfigError(
                f"--listen-ws must be NAME=WS_URL with NAME one of "
                f"{[lst.name for lst in listeners]}, got name {name!r}"
            )
        listeners = (
            *listeners[:index],
            with_ws_url(listeners[index], url),
            *listeners[index + 1 :],
        )
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
