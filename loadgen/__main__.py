"""`python -m loadgen`: one load worker process writing its own shards.

`scenarios.worker` runs the same worker with the mock chain's truth attached.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import trio

from analysis.shards import ShardWriter, shard_path

from .mix import parse_batch, parse_mix
from .progress import load_fault_plan, show_progress
from .schedule import ConstantRate, Share, parse_arrival
from .timer import PreciseTimer, precise_timer_available
from .transport import Http1Transport, HttpxTransport, Transport, open_transport
from .validate import DEFAULT_MAX_LAG_BLOCKS, Truth
from .worker import Clock, Summary, WorkerConfig, run_worker
from .ws import WsConfig, parse_subscriptions, run_ws_clients

# See run_args: how often the requests shard is written, and the GIL switch interval.
SHARD_FLUSH_S = 0.02
GIL_SWITCH_S = 0.0002
# Connections opened before the load starts (more open on demand).
WARM_CONNECTIONS = 8

__all__ = ["build_parser", "check_args", "main", "run", "run_args"]


def build_parser(
    prog: str = "python -m loadgen", *, parser_class: type = argparse.ArgumentParser
) -> argparse.ArgumentParser:
    p = parser_class(prog=prog, description=__doc__)
    p.add_argument("--worker", type=int, default=0, help="this worker's index")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the rate")
    p.add_argument("--target", required=True, help="HTTP URL of the system under test")
    p.add_argument("--run-dir", type=Path, required=True)
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--t0-ns", type=int, help="start of the load, epoch ns")
    start.add_argument(
        "--ready-fd",
        type=int,
        help="held start: write a line on this descriptor once set up, then read the"
        " start of the load (epoch ns) as one line on stdin",
    )
    p.add_argument("--rate", type=float, help="requests per second (constant arrivals)")
    p.add_argument(
        "--arrival",
        help="constant:RATE | ramp:FROM,TO | steps:RATE@S,... | poisson:RATE"
        " | bursts:BASE,PEAK,EVERY_S,BURST_S | closed:CLIENTS[,THINK_MS]; the whole run's"
        " rate, shared by --workers",
    )
    p.add_argument("--duration", type=float, required=True, help="seconds of load")
    p.add_argument("--mix", default="eth_blockNumber=1,eth_getBalance=1")
    p.add_argument("--batch", help="SHARE:SIZE=WEIGHT,... e.g. 0.1:2=1,10=1")
    p.add_argument("--params-file", type=Path, help="JSON {method: [[params], ...]}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, s")
    p.add_argument("--drain", type=float, help="s given to calls in flight after the load")
    p.add_argument("--max-in-flight", type=int, default=1000)
    p.add_argument("--max-lag-blocks", type=int, default=DEFAULT_MAX_LAG_BLOCKS)
    p.add_argument("--transport", choices=("auto", "http1", "httpx"), default="auto")
    p.add_argument(
        "--timer",
        choices=("precise", "trio"),
        default="precise" if precise_timer_available() else "trio",
        help="precise: timerfd, µs accuracy (Linux); trio: trio.sleep, 1 ms granularity",
    )
    p.add_argument("--faults", type=Path, help="chaos plan, shown in the progress line")
    ws = p.add_argument_group("WebSocket subscriptions (off unless --ws-subscriptions)")
    ws.add_argument("--ws-subscriptions", help="kind=clients,... e.g. newHeads=2,logs=1")
    ws.add_argument("--ws-url", help="default: the target with ws:// (same port, path /)")
    ws.add_argument("--ws-reconnect", choices=("on", "off"), default="off")
    ws.add_argument(
        "--ws-call-interval",
        type=float,
        default=0.0,
        help="s between eth_blockNumber probes per client, on a schedule from t0 (0: none)",
    )
    return p


def _config(args: argparse.Namespace) -> WorkerConfig:
    if args.arrival:
        schedule = parse_arrival(args.arrival, args.duration, seed=args.seed)
    elif args.rate is not None:
        schedule = ConstantRate(args.rate, args.duration)
    else:
        raise ValueError("one of --rate or --arrival is required")
    if args.workers > 1:
        if hasattr(schedule, "offsets_ns"):
            schedule = Share(schedule, args.worker, args.workers)  # type: ignore[arg-type]
        elif args.worker >= args.workers:
            raise ValueError(f"worker must be in [0, {args.workers}), got {args.worker}")
    fixed = None
    if args.params_file:
        try:
            fixed = json.loads(args.params_file.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"params-file {args.params_file}: {exc}") from None
        if not isinstance(fixed, dict):
            raise ValueError("params-file must hold a JSON object {method: [[params], ...]}")
    return WorkerConfig(
        worker=args.worker,
        t0_ns=args.t0_ns,
        schedule=schedule,
        mix=parse_mix(args.mix, fixed=fixed),
        seed=args.seed,
        timeout_s=args.timeout,
        drain_s=args.drain,
        max_in_flight=args.max_in_flight,
        batch=parse_batch(args.batch) if args.batch else None,
        fixed=fixed,
        max_lag_blocks=args.max_lag_blocks,
    )


def _ws_config(args: argparse.Namespace, config: WorkerConfig) -> WsConfig:
    url = args.ws_url or "ws" + args.target.removeprefix("http")
    return WsConfig(
        worker=config.worker,
        url=url,
        t0_ns=config.t0_ns,
        duration_s=args.duration,
        subscriptions=parse_subscriptions(args.ws_subscriptions),
        reconnect=args.ws_reconnect == "on",
        call_interval_s=args.ws_call_interval,
        timeout_s=args.timeout,
        max_lag_blocks=args.max_lag_blocks,
    )


def _transport(kind: str, url: str, max_connections: int) -> Transport:
    if kind == "http1":
        return Http1Transport(url, max_connections=max_connections)
    if kind == "httpx":
        return HttpxTransport(url, max_connections=max_connections)
    return open_transport(url, max_connections=max_connections)


def run(
    argv: Sequence[str] | None = None,
    *,
    truth: Truth | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Parses the worker's arguments, runs it, writes its shards and summary.

    Bad arguments: one line on stderr, exit 2 (argparse's `error`).
    """
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    return run_args(parser, args, truth=truth)


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ValueError(message)


def check_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parses and validates worker arguments without running anything.

    Raises:
        ValueError: the first bad argument, named.
    """
    args = build_parser(parser_class=_RaisingParser).parse_args(list(argv))
    if not args.target.startswith(("http://", "https://")):
        raise ValueError(f"--target must be an http(s) URL, got {args.target!r}")
    config = _config(args)
    if args.ws_subscriptions:
        _ws_config(args, config)
    return args


def run_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, truth: Truth | None = None
) -> int:
    if not args.target.startswith(("http://", "https://")):
        parser.error(f"--target must be an http(s) URL, got {args.target!r}")
    held = args.ready_fd is not None
    if held:
        args.t0_ns = 0  # checked with a stand-in; the start is read below
    try:
        config = _config(args)
        transport = _transport(args.transport, args.target, args.max_in_flight)
        plan = load_fault_plan(args.faults, args.t0_ns) if args.faults else []
        ws_config = _ws_config(args, config) if args.ws_subscriptions else None
        timer = PreciseTimer() if args.timer == "precise" else None
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if held:
        try:
            args.t0_ns = _held_start(args.ready_fd)
        except (ValueError, OSError) as exc:
            parser.error(str(exc))
        config = replace(config, t0_ns=args.t0_ns)
        plan = [(f, start + args.t0_ns, end + args.t0_ns) for f, start, end in plan]
        ws_config = _ws_config(args, config) if ws_config else None
    name = f"w{config.worker}"
    # The shard writer's thread holds the GIL while it encodes a batch (2 ms per 1,000
    # rows here); by default the scheduler would wait up to 5 ms for it (the switch
    # interval), and a batch of 0.5 s at 10,000 calls/s takes ~10 ms. Small batches
    # and a 0.5 ms switch interval keep sends on time.
    sys.setswitchinterval(GIL_SWITCH_S)
    requests = ShardWriter(
        shard_path(args.run_dir / "client", "requests", name),
        "requests",
        flush_interval=SHARD_FLUSH_S,
    )
    lifecycle = ShardWriter(shard_path(args.run_dir / "events", "lifecycle", name), "lifecycle")
    ws_sinks = (
        (
            ShardWriter(
                shard_path(args.run_dir / "client", "ws_notifications", name), "ws_notifications"
            ),
            ShardWriter(shard_path(args.run_dir / "client", "ws_sessions", name), "ws_sessions"),
        )
        if ws_config
        else ()
    )
    pid = os.getpid()
    # The process name the runner gives this child (its `spawned` row): analysis
    # matches a worker's `spawned` and `stopped` rows by it.
    process = f"loadgen-{name}"
    lifecycle.append((time.time_ns(), process, "loadgen", pid, "started", None))
    summary = Summary()
    # Quiet unless a person watches: the line is redrawn with '\r', useless in a log.
    live = sys.stderr.isatty()

    async def main_task() -> dict:
        clock = Clock.from_system(timer=timer)
        try:
            async with trio.open_nursery() as nursery:
                if live:
                    nursery.start_soon(show_progress, summary, clock, args.t0_ns, sys.stderr, plan)
                nursery.start_soon(_stop_on_signal, nursery.cancel_scope, summary)
                warm_up = getattr(transport, "warm_up", None)
                if warm_up is not None:
                    with trio.move_on_at(clock.deadline(args.t0_ns)):
                        await warm_up(WARM_CONNECTIONS)
                # Everything start-up made (modules, the mock chain, warm connections)
                # lives to the end: frozen, the collector never walks it again. Without
                # this, one full collection in the load walks it all (15 ms of CPU
                # measured, a burst of late sends).
                gc.freeze()
                async with trio.open_nursery() as load:
                    if ws_config:
                        load.start_soon(
                            partial(
                                run_ws_clients,
                                ws_config,
                                *ws_sinks,
                                requests,
                                clock=clock,
                                truth=truth,
                            )
                        )
                    await run_worker(
                        config, transport, requests, clock=clock, truth=truth, summary=summary
                    )
                nursery.cancel_scope.cancel()
        finally:
            # Unfrozen, the start-up objects are collected at exit as usual (extension
            # modules such as duckdb's report leaks otherwise).
            gc.unfreeze()
            await transport.aclose()
        return summary.as_dict()

    try:
        result = trio.run(main_task)
    finally:
        if timer is not None:
            timer.close()
        requests.close()
        for sink in ws_sinks:
            sink.close()
    if live:
        sys.stderr.write("\n")
    lifecycle.append((time.time_ns(), process, "loadgen", pid, "stopped", json.dumps(result)))
    lifecycle.close()
    print(json.dumps({"worker": config.worker, **result}), flush=True)
    return 0


def _held_start(ready_fd: int) -> int:
    """Says this worker is set up (a line on `ready_fd`), then waits for the start of the
    load: one line on stdin, epoch ns.

    Raises:
        ValueError: stdin ended or held no integer.
        OSError: `ready_fd` is not open for writing.
    """
    with open(ready_fd, "w") as ready:
        ready.write("ready\n")
    line = sys.stdin.readline()
    try:
        return int(line)
    except ValueError:
        raise ValueError(
            f"--ready-fd: expected the start (epoch ns) on stdin, got {line!r}"
        ) from None


async def _stop_on_signal(scope: trio.CancelScope, summary: Summary) -> None:
    # SIGTERM or SIGINT ends the load early; the shards and summary are still written,
    # and the summary says so (its planned calls then outnumber its rows).
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            summary.interrupted_by = signal.Signals(signum).name
            scope.cancel()
            return


def main(argv: list[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
