"""``python -m examples.reference_router --config FILE.toml``.

Prints ``ready http://HOST:PORT`` (flushed) once listening, serves until SIGTERM or
SIGINT, then exits 0. A bad configuration is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys

import trio

from ._config import ConfigError, RouterConfig, load_config
from ._server import serve

EXIT_CONFIG_ERROR = 2


async def _run(config: RouterConfig) -> None:
    async with trio.open_nursery() as nursery:
        # Open the receiver before announcing readiness, so a SIGTERM sent right after the
        # ready line is a clean shutdown, not the default kill.
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            host, port = await nursery.start(serve, config)
            shown = f"[{host}]" if ":" in host else host
            print(f"ready http://{shown}:{port}", flush=True)
            async for _ in signals:
                break
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.reference_router",
        description="Reference JSON-RPC router: trio + h11 front, httpx upstreams, failover.",
    )
    parser.add_argument("--config", required=True, help="TOML configuration file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        trio.run(_run, config)
    except OSError as exc:
        print(f"cannot listen on {config.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
