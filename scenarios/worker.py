"""`python -m scenarios.worker`: a load worker that knows the mock chain's truth.

The load generator must not import the providers (producers never import each other),
so it defines the `Truth` it needs and this entry point, which may import both, builds
it from `providers.Chain` with the same seed, genesis and block time the fleet serves.
Every other argument is `python -m loadgen`'s.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from analysis.shards import ShardWriter, shard_path
from loadgen.__main__ import build_parser, check_args, run_args
from providers.chain import DEFAULT_CHAIN_ID, Chain

# What a mock provider adds to the base fee in eth_gasPrice (providers/jsonrpc.py).
from providers.jsonrpc import _TIP_WEI as GAS_TIP_WEI
from providers.remote import Redactor, secrets_in_url

from .errors import ConfigError, RunError
from .processes import START_MARGIN_NS, Child, ProcessGroup, StartGate

__all__ = ["ChainTruth", "main", "run_load"]

# How long the workers may take to start (Python, imports, the mock chain) before the
# run gives up on them: 0.3 s on an idle machine, a few beside a CPU hog.
READY_TIMEOUT_S = 60.0


class ChainTruth:
    """`loadgen.Truth` over the mock fleet's canonical chain: what a mock provider
    answers (`providers.jsonrpc.MockNode`), read from the same pure `Chain`."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self.chain_id = chain.chain_id
        # The mock's nodes follow the chain's clock: never syncing.
        self.synced = True
        # Bound methods, not wrappers: these run once per answer judged.
        self.balance = chain.balance
        self.call_result = chain.call_result
        self.log_addresses = frozenset(chain.token_contracts)

    def head_at(self, t_ns: int) -> int:
        return self._chain.head(t_ns)

    def block_hash(self, n: int) -> str:
        return self._chain.block_hash(n)

    def produced_at(self, n: int) -> int:
        """When block `n` was produced (ws_notifications.t_produced)."""
        return self._chain.block_time_ns(n)

    def gas_price(self, n: int) -> int:
        """eth_gasPrice at head `n`: the base fee plus the mock's priority fee."""
        return self._chain.base_fee(n) + GAS_TIP_WEI

    def logs(self, n: int) -> list[dict]:
        """Every log of canonical block `n`."""
        return self._chain.logs(n)

    def tx_block(self, tx_hash: str) -> int | None:
        """The canonical block of a transaction the chain made, else None."""
        where = self._chain.locate_tx(tx_hash)
        return where[0] if where is not None and where[2] == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m scenarios.worker")
    group = parser.add_argument_group("the mock chain (as given to providers.mock)")
    group.add_argument("--chain-seed", type=int, required=True)
    group.add_argument("--genesis-ns", type=int, required=True)
    group.add_argument("--block-time-ms", type=int, default=1000)
    group.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID)
    args = parser.parse_args(argv)
    try:
        chain = Chain(args.chain_seed, args.genesis_ns, args.block_time_ms, chain_id=args.chain_id)
    except ValueError as exc:
        parser.error(str(exc))
    return run_args(parser, args, truth=ChainTruth(chain))


def run_load(
    worker_args: Sequence[str],
    *,
    workers: int,
    runs_dir: Path,
    truth_args: Sequence[str] = (),
    slos: Sequence[str] = (),
) -> Path:
    """Runs `workers` load worker processes sharing one schedule against a running
    system; returns the run directory (the caller judges it).

    `worker_args` are `python -m loadgen` arguments without --worker, --workers,
    --run-dir and --t0-ns: the workers are held at a `StartGate`, and the load starts
    `START_MARGIN_NS` after the last is ready. `truth_args` (`--chain-seed S --genesis-ns G
    [--block-time-ms B]`) make them validate answers against the mock chain.

    Raises:
        ConfigError: bad arguments (checked before any process starts).
        RunError: a worker failed or did not finish in time.
    """
    from .runner import FROM_FILE, new_run_dir, write_private

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    probe = [*worker_args, "--run-dir", ".", "--t0-ns", "0", "--workers", str(workers)]
    try:
        args = check_args(probe)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    run_dir = new_run_dir(runs_dir, "load")
    module = "scenarios.worker" if truth_args else "loadgen"
    # The target's key (a path segment, user-info, a credential query parameter) goes
    # into no file the run writes and no command line.
    targets = [args.target, *([args.ws_url] if getattr(args, "ws_url", None) else [])]
    redactor = Redactor([k for url in targets if url for k in secrets_in_url(url)])
    lifecycle = ShardWriter(shard_path(run_dir / "events", "lifecycle", "runner"), "lifecycle")

    def spawned(child: Child) -> None:
        lifecycle.append((time.time_ns(), child.name, child.role, child.pid, "spawned", None))

    group = ProcessGroup(run_dir / "logs", on_start=spawned)
    gate = StartGate()
    spec = {
        "name": "load",
        "host": platform.node(),
        "t0_ns": None,
        "workers": workers,
        "worker_args": redactor.value(list(worker_args)),
        "truth_args": list(truth_args),
        "slos": list(slos),
    }
    (run_dir / "scenario.json").write_text(json.dumps(spec, indent=2))
    private: list[Path] = []

    def start(name: str, role: str, rest: list[str], **kw: object) -> Child:
        if not redactor:
            return group.start(name, role, ["-m", module, *rest], **kw)  # type: ignore[arg-type]
        # Through a 0600 file, as the scenario runner passes a key (runner.FROM_FILE).
        folder = run_dir / "private"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / f"{name}.args.json"
        write_private(path, json.dumps({"module": module, "argv": rest}))
        private.append(path)
        return group.start(name, role, ["-c", FROM_FILE, str(path)], **kw)  # type: ignore[arg-type]

    try:
        own = ["--workers", str(workers), "--run-dir", str(run_dir)]
        children = [
            gate.start(start, f"loadgen-w{i}", "loadgen",
                       [*worker_args, *truth_args, "--worker", str(i), *own])
            for i in range(workers)
        ]  # fmt: skip
        try:
            gate.wait(READY_TIMEOUT_S)
        except (ChildProcessError, TimeoutError) as exc:
            raise RunError(f"load workers: {exc}") from None
        spec["t0_ns"] = t0_ns = time.time_ns() + START_MARGIN_NS
        (run_dir / "scenario.json").write_text(json.dumps(spec, indent=2))
        gate.release(t0_ns)
        # Each worker ends by itself: its schedule, then its drain (at most a timeout).
        deadline = time.monotonic() + START_MARGIN_NS / 1e9 + args.duration + args.timeout + 30
        while any(c.exited() is None for c in children):
            if time.monotonic() > deadline:
                raise RunError("a load worker did not finish in time")
            time.sleep(0.1)
        failed = [c for c in children if c.exited() != 0]
        if failed:
            raise RunError(
                "; ".join(f"{c.name} exited {c.exited()}: {c.log_tail(2)}" for c in failed)
            )
    finally:
        gate.close()
        group.stop_all()
        lifecycle.close()
        spec["t_end_ns"] = time.time_ns()
        (run_dir / "scenario.json").write_text(json.dumps(spec, indent=2))
        for path in private:
            path.unlink(missing_ok=True)
        if private:
            (run_dir / "private").rmdir()
        if redactor:
            redactor.tree(run_dir)
    return run_dir


if __name__ == "__main__":
    sys.exit(main())
