"""``python -m providers.mock``: one mock Ethereum provider on 127.0.0.1.

HTTP JSON-RPC on ``/`` and WebSocket JSON-RPC on the same port (``GET /`` with an
upgrade). Prints ``ready http://127.0.0.1:PORT`` on stdout once listening (PORT is the real one
when ``--port 0``), serves until SIGTERM or SIGINT, then exits 0. Bad arguments print
one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from providers.behaviour import Behaviour, parse_behaviour
from providers.chain import DEFAULT_CHAIN_ID, Chain
from providers.jsonrpc import MockNode
from providers.server import serve

__all__ = ["main", "parse_args"]

_PROG = "providers.mock"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), per the CLI contract."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{_PROG}: error: {message}\n")


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _any_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; exits 2 with one stderr line on bad arguments."""
    p = _Parser(prog=_PROG, description="A deterministic mock Ethereum JSON-RPC provider.")
    p.add_argument("--name", default="mock", help="provider name (web3_clientVersion, /health)")
    p.add_argument(
        "--port",
        type=_int_at_least(0, 65535),
        required=True,
        help="TCP port on 127.0.0.1; 0 picks a free one",
    )
    p.add_argument("--seed", type=_any_int, default=0, help="chain seed (default 0)")
    p.add_argument(
        "--genesis-ns",
        type=_int_at_least(0),
        default=None,
        help="block 0's time in ns since the epoch (default: now, whole second)",
    )
    p.add_argument(
        "--block-time-ms",
        type=_int_at_least(1),
        default=1000,
        help="time between blocks (default 1000)",
    )
    p.add_argument(
        "--chain-id",
        type=_int_at_least(1),
        default=DEFAULT_CHAIN_ID,
        help=f"eth_chainId (default {DEFAULT_CHAIN_ID})",
    )
    p.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="event loop: uvloop when installed (auto, the default), or the standard one",
    )
    p.add_argument(
        "--behaviour",
        default=None,
        help="native behaviours as JSON, or @FILE (see providers.behaviour)",
    )
    args = p.parse_args(argv)
    if not args.name:
        p.error("argument --name: must not be empty")
    try:
        args.behaviour = _load_behaviour(args.behaviour)
    except ValueError as e:
        p.error(f"argument --behaviour: {e}")
    if args.genesis_ns is None:
        args.genesis_ns = time.time_ns() // 1_000_000_000 * 1_000_000_000
    return args


def _load_behaviour(text: str | None) -> Behaviour:
    if text is None:
        return Behaviour()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise ValueError(f"cannot read {text[1:]}: {e.strerror or e}") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return parse_behaviour(spec)


async def _run(args: argparse.Namespace) -> None:
    chain = Chain(args.seed, args.genesis_ns, args.block_time_ms, chain_id=args.chain_id)
    node = MockNode(chain, name=args.name, behaviour=args.behaviour)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def ready(port: int) -> None:
        print(f"ready http://127.0.0.1:{port}", flush=True)

    await serve(node, args.port, ready=ready, stop=stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 after SIGTERM/SIGINT, 1 if it cannot listen)."""
    args = parse_args(argv)
    loop_factory = None
    if args.loop != "asyncio":
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:
            if args.loop == "uvloop":
                print(f"{_PROG}: error: --loop uvloop: uvloop is not installed", file=sys.stderr)
                return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_run(args))
    except OSError as e:
        print(
            f"{_PROG}: error: cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    print(f"{_PROG}: {args.name} stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
