"""`python -m loadgen`: one load worker process writing its own shards."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import trio

from analysis.shards import ShardWriter, shard_path

from .mix import parse_mix
from .schedule import ConstantRate
from .transport import HttpxTransport
from .worker import Clock, WorkerConfig, run_worker


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadgen", description=__doc__)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--target", required=True, help="HTTP URL of the system under test")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--t0-ns", type=int, required=True, help="start of the load, epoch ns")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    p.add_argument("--duration", type=float, required=True, help="seconds of load")
    p.add_argument("--mix", default="eth_blockNumber=1,eth_getBalance=1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, s")
    p.add_argument("--max-in-flight", type=int, default=1000)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.target.startswith(("http://", "https://")):
        parser.error(f"--target must be an http(s) URL, got {args.target!r}")
    try:
        config = WorkerConfig(
            worker=args.worker,
            t0_ns=args.t0_ns,
            schedule=ConstantRate(args.rate, args.duration),
            mix=parse_mix(args.mix),
            seed=args.seed,
            timeout_s=args.timeout,
            max_in_flight=args.max_in_flight,
        )
    except ValueError as exc:
        parser.error(str(exc))
    name = f"w{config.worker}"
    requests = ShardWriter(shard_path(args.run_dir / "client", "requests", name), "requests")
    lifecycle = ShardWriter(shard_path(args.run_dir / "events", "lifecycle", name), "lifecycle")
    pid = os.getpid()
    lifecycle.append((time.time_ns(), name, "loadgen", pid, "started", None))

    async def run() -> dict:
        transport = HttpxTransport(args.target)
        try:
            summary = await run_worker(config, transport, requests, clock=Clock(time.time_ns()))
        finally:
            await transport.aclose()
        return summary.as_dict()

    try:
        result = trio.run(run)
    finally:
        requests.close()
    lifecycle.append((time.time_ns(), name, "loadgen", pid, "stopped", json.dumps(result)))
    lifecycle.close()
    print(json.dumps({"worker": config.worker, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
