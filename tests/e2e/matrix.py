"""The verdict matrix: the built-ins' fast forms against routers Battle did not write:
the two of tests/routers/, each correct by default and each with defects planted in
it, and nginx and HAProxy with the good configs of their sut files (examples/).

Every correct router must pass every built-in it can run; every defect must fail the
built-in that names it, on the SLO that names it, in a valid run (a router's defect is
never an invalid run). `tests/e2e/test_matrix.py` runs each cell of the two routers of
tests/routers/ once (CI);

    .venv/bin/python tests/e2e/matrix.py --repeat 3 [--jobs 2] [--only aio --only node]

(`make matrix`) runs every cell N times and prints the table: false alarms (a correct
router failed or came out invalid), misses (a defect passed, or failed on other SLOs
only, or came out invalid) and flips (a cell whose verdict differed between repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from battle_cli import run_battle

from scenarios.builtin import MODULES

ROUTERS_DIR = Path(__file__).resolve().parents[1] / "routers"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
SUT_FILES = {
    "aio": ROUTERS_DIR / "aio_priority.sut.toml",
    "node": ROUTERS_DIR / "node_roundrobin.sut.toml",
    "nginx": EXAMPLES_DIR / "nginx" / "nginx.sut.toml",
    "haproxy": EXAMPLES_DIR / "haproxy" / "haproxy.sut.toml",
}
# The routers CI runs on every built-in (tests/e2e/test_matrix.py); `make matrix` runs
# them all. nginx and HAProxy, from Debian, are the programs their sut files name.
CI_ROUTERS = ("aio", "node")
PACKAGES = {"nginx": "nginx-light", "haproxy": "haproxy"}
# Debian installs nginx and HAProxy in /usr/sbin, which is not on an unprivileged PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
# Every built-in but the demo (which judges the reference router's demo), in `battle
# list` order.
BUILTINS = tuple(name for name in MODULES if name != "demo")
# What a router cannot run at all, and why: not a verdict.
CANNOT_RUN = {
    ("node", "ws_continuity"): "node_roundrobin serves no WebSocket",
    ("node", "long_running_stability"): "its load holds a newHeads subscription; node_roundrobin"
    " serves no WebSocket",
}
# A correct router by its own policy that lacks a feature an invariant asks of every
# router: the built-in must fail it, on those SLOs (a finding, not a false alarm). The
# pass-through proxies read no JSON-RPC: they track no heads, read no Retry-After, pass
# on an error inside an HTTP 200 and tie each client's WebSocket to one upstream's.
_NO_HEADS = ("heads_monotonic",)
# No consensus on the head and no floor under safe/finalized: a head 1,000 blocks ahead
# (or a genesis block as `latest`) goes to clients as an answer, and tags go back.
_NO_HEAD_CONSENSUS = ("no_wrong_answer", "tags_monotonic")
_NO_BODY_LIMITS = ("no_unrescued_failure",)
_PASS_THROUGH_WS = ("ws_every_block", "upstream_move_away")
FINDINGS = {
    ("node", "stale_head"): (
        _NO_HEADS,
        "node_roundrobin reads no JSON-RPC and tracks no heads (as nginx and HAProxy):"
        " round robin hands its clients A's lagging head after B's",
    ),
    ("nginx", "stale_head"): (
        _NO_HEADS,
        "nginx tracks no heads: round robin hands out A's lagging head after B's",
    ),
    ("haproxy", "stale_head"): (
        _NO_HEADS,
        "HAProxy tracks no heads: round robin hands out A's lagging head after B's",
    ),
    ("node", "lying_head"): (
        _NO_HEAD_CONSENSUS,
        "node_roundrobin reads no JSON-RPC: A's head from 1,000 blocks ahead, its genesis"
        " block as `latest` and its safe/finalized blocks going back reach the clients",
    ),
    ("nginx", "lying_head"): (
        _NO_HEAD_CONSENSUS,
        "nginx reads no JSON-RPC: round robin hands out A's lying heads and tags",
    ),
    ("haproxy", "lying_head"): (
        _NO_HEAD_CONSENSUS,
        "HAProxy reads no JSON-RPC: round robin hands out A's lying heads and tags",
    ),
    ("node", "rate_limited_provider"): (
        _NO_BODY_LIMITS,
        "node_roundrobin reads no JSON-RPC: a rate limit inside an HTTP 200 (Infura's"
        " -32005, QuickNode's -32007, Alchemy's 429) goes to the client as an answer",
    ),
    ("nginx", "rate_limited_provider"): (
        ("no_retry_after_breach", *_NO_BODY_LIMITS),
        "nginx reads no Retry-After: a 429 takes A out for fail_timeout (2 s), shorter"
        " than the Retry-After it was given; and no JSON-RPC: a rate limit inside an"
        " HTTP 200 goes to the client as an answer",
    ),
    ("haproxy", "rate_limited_provider"): (
        ("no_retry_after_breach", "no_unrescued_failure"),
        "HAProxy 2.6 cannot retry a 429 (retry-on has no 429) and its health checks"
        " pass a rate-limited upstream: clients get A's 429s, A keeps its share",
    ),
    ("haproxy", "total_outage"): (
        ("no_retry_storm",),
        "with the other upstreams marked down, redispatch has one server left: up to 6"
        " resets on it for one call in ~5 ms (HAProxy logs retries=2; a failed reused"
        " keep-alive connection is retried once more, uncounted)",
    ),
    ("nginx", "ws_continuity"): (
        _PASS_THROUGH_WS,
        "nginx tunnels each client's WebSocket to one upstream: a stalled or closed"
        " upstream is the client's, with no resubscription elsewhere and no backfill",
    ),
    ("haproxy", "ws_continuity"): (
        _PASS_THROUGH_WS,
        "HAProxy tunnels each client's WebSocket to one upstream: a stalled or closed"
        " upstream is the client's, with no resubscription elsewhere and no backfill",
    ),
}


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: `router` on `builtin`, with `defect` planted (None: the
    correct router), which must fail `caught_by` (empty: must pass)."""

    router: str
    builtin: str
    defect: str | None = None
    caught_by: frozenset[str] = frozenset()
    # Why a correct router must fail `caught_by` here (FINDINGS).
    finding: str = ""
    # A variant of the built-in: its name in the id, and the `--set`s that make it.
    variant: str = ""
    sets: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        cell = f"{self.router}-{self.defect or 'correct'}-{self.builtin}"
        return f"{cell}-{self.variant}" if self.variant else cell

    @property
    def must_fail(self) -> bool:
        return bool(self.caught_by)


def _defect(
    router: str, defect: str, builtin: str, *slos: str, variant: str = "",
    sets: tuple[str, ...] = (),
) -> Cell:  # fmt: skip
    return Cell(router, builtin, defect, frozenset(slos), variant=variant, sets=sets)


CORRECT = tuple(
    Cell(router, builtin, None, frozenset(FINDINGS[router, builtin][0]),
         FINDINGS[router, builtin][1])
    if (router, builtin) in FINDINGS
    else Cell(router, builtin)
    for router in SUT_FILES
    for builtin in BUILTINS
    if (router, builtin) not in CANNOT_RUN
)  # fmt: skip
# Each defect on the built-in that names it, and the SLO that must catch it.
DEFECTS = (
    _defect("aio", "no_failover", "http_failover", "no_unrescued_failure"),
    _defect("aio", "no_breaker", "http_failover", "wasted_attempts"),
    _defect("aio", "breaker_never_closes", "http_failover", "no_abandoned_provider"),
    _defect("aio", "ignore_retry_after", "rate_limited_provider", "no_retry_after_breach"),
    _defect("aio", "retry_storm", "http_failover", "no_retry_storm"),
    _defect("aio", "no_ws_resubscribe", "ws_continuity", "ws_kept_up"),
    _defect("aio", "no_gap_fill", "ws_continuity", "ws_no_gap"),
    _defect("aio", "duplicate_notifications", "ws_continuity", "ws_no_duplicate"),
    _defect("aio", "alive_by_answers", "ws_continuity", "ws_silence"),
    _defect("aio", "head_backwards", "stale_head", "heads_monotonic"),
    _defect("aio", "no_head_tracking", "stale_head", "heads_monotonic"),
    _defect("aio", "no_head_consensus", "lying_head", "no_wrong_answer"),
    _defect("aio", "no_tag_floor", "lying_head", "tags_monotonic"),
    # aio sends every call to its first upstream, so the lie is moved to its backup B:
    # following B's head 1,000 ahead, it takes A's traffic, the honest majority's, away.
    # No come-back is judged: a short tail after the last lie is enough.
    _defect(
        "aio",
        "no_head_consensus",
        "lying_head",
        "majority_keeps_traffic",
        variant="b_ahead",
        sets=('faults.0.provider="B"', 'faults.0.fault_id="b-ahead"', "expect.come_back_s=2"),
    ),
    _defect("aio", "slow_leak", "long_running_stability", "memory_growth"),
    _defect("aio", "swallow_errors", "total_outage", "no_wrong_answer"),
    _defect("aio", "add_latency_15ms", "concurrent_load", "overhead"),
    _defect("aio", "batch_wrong_ids", "concurrent_load", "no_wrong_answer"),
    _defect("aio", "attempt_timeout_30s", "provider_degradation", "no_hung_call"),
    _defect("node", "no_failover", "http_failover", "no_unrescued_failure"),
    _defect("node", "no_ejection", "http_failover", "wasted_attempts"),
    _defect("node", "eject_forever", "http_failover", "no_abandoned_provider"),
    _defect("node", "retry_same_upstream", "http_failover", "no_unrescued_failure"),
    _defect("node", "swallow_errors", "total_outage", "no_wrong_answer"),
    _defect("node", "add_latency_15ms", "concurrent_load", "overhead"),
    _defect("node", "attempt_timeout_30s", "provider_degradation", "no_hung_call"),
)
CELLS = CORRECT + DEFECTS
# A finding's cell (a router lacking what an invariant asks) shows again what the
# defects' cells already prove fires; `make matrix` runs them, CI leaves them out to stay
# within its 20 minutes (66 end-to-end runs took 738 s, three at a time, on 2 cores).
CI_CELLS = tuple(c for c in CELLS if c.router in CI_ROUTERS and not c.finding)


def missing_programs(cells: Iterable[Cell]) -> list[str]:
    """What `cells` need that is not installed, each with the Debian package to install."""
    return [
        f"{name} (apt-get install --no-install-recommends {package})"
        for name, package in PACKAGES.items()
        if any(c.router == name for c in cells) and shutil.which(name, path=SEARCH_PATH) is None
    ]


@dataclass(frozen=True)
class Outcome:
    """What one run of a cell gave."""

    cell: Cell
    exit_code: int
    verdict: str
    failing: frozenset[str]
    invalid_because: tuple[str, ...]
    seconds: float
    run_dir: str

    @property
    def ok(self) -> bool:
        """The cell's claim held: a correct router passed; a defect failed, validly, on
        the SLO that names it."""
        if not self.cell.must_fail:
            return self.verdict == "passed"
        return self.verdict == "failed" and self.cell.caught_by <= self.failing

    def summary(self) -> str:
        extra = f" invalid: {', '.join(self.invalid_because)}" if self.invalid_because else ""
        return f"{self.verdict} (exit {self.exit_code}) failing {sorted(self.failing)}{extra}"


def run_cell(cell: Cell, runs_dir: Path, timeout: float = 240) -> Outcome:
    """Runs one cell through `battle run` into `runs_dir` (which it must have alone)."""
    args = ["run", cell.builtin, "--sut", str(SUT_FILES[cell.router]), "--runs-dir",
            str(runs_dir)]  # fmt: skip
    if cell.defect:
        args += ["--set", f"sut.options.defects={cell.defect}"]
    for item in cell.sets:
        args += ["--set", item]
    started = time.monotonic()
    result = run_battle(args, timeout=timeout, env={**os.environ, "PATH": SEARCH_PATH})
    seconds = time.monotonic() - started
    reports = list(runs_dir.glob("*/report.json"))
    if len(reports) != 1:
        tail = (result.stdout + result.stderr)[-2000:]
        return Outcome(cell, result.returncode, "no report", frozenset(), (tail,), seconds, "")
    report = json.loads(reports[0].read_text())
    return Outcome(
        cell,
        result.returncode,
        report["verdict"],
        frozenset(s["name"] for s in report["slos"] if not s["passed"]),
        tuple(v["name"] for v in report["validity"] if not v["passed"]),
        seconds,
        str(reports[0].parent),
    )


def _table(cells: Iterable[Cell], outcomes: dict[str, list[Outcome]]) -> str:
    lines = ["| router | defect | built-in | must fail | runs | verdicts | claim held |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for cell in cells:
        got = outcomes[cell.id]
        verdicts = ", ".join(sorted({o.summary() for o in got}))
        held = sum(o.ok for o in got)
        lines.append(
            f"| {cell.router} | {cell.defect or '—'} | {cell.builtin} |"
            f" {', '.join(sorted(cell.caught_by)) or '(pass)'} | {len(got)} | {verdicts} |"
            f" {held}/{len(got)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per cell (default 3)")
    p.add_argument("--jobs", type=int, default=2, help="cells run at once (default 2)")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="only cells whose id contains this text (repeatable: any of them)",
    )
    p.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.jobs < 1:
        p.error("--repeat and --jobs must be >= 1")
    cells = [c for c in CELLS if not args.only or any(text in c.id for text in args.only)]
    if not cells:
        p.error(f"--only {' '.join(args.only)!r} matches no cell")
    if missing := missing_programs(cells):
        p.error(f"not installed: {', '.join(missing)}; or leave their rows out with --only")
    root = args.runs_dir or Path(tempfile.mkdtemp(prefix="battle-matrix-"))
    jobs = [(cell, k) for k in range(args.repeat) for cell in cells]
    outcomes: dict[str, list[Outcome]] = {c.id: [] for c in cells}
    started = time.monotonic()

    def one(job: tuple[Cell, int]) -> Outcome:
        cell, k = job
        out = run_cell(cell, root / f"{cell.id}.{k}")
        mark = "ok  " if out.ok else "MISS" if cell.must_fail else "FALSE ALARM"
        print(f"{mark} {cell.id} #{k + 1}: {out.summary()} [{out.seconds:.0f} s]", flush=True)
        return out

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for out in pool.map(one, jobs):
            outcomes[out.cell.id].append(out)
    print()
    print(_table(cells, outcomes))
    false_alarms = sum(not o.ok for c in cells if not c.must_fail for o in outcomes[c.id])
    misses = sum(not o.ok for c in cells if c.must_fail for o in outcomes[c.id])
    flips = sum(len({o.ok for o in outcomes[c.id]}) > 1 for c in cells)
    invalid = sum(bool(o.invalid_because) for c in cells for o in outcomes[c.id])
    print()
    print(
        f"{len(jobs)} runs of {len(cells)} cells in {time.monotonic() - started:.0f} s"
        f" (jobs {args.jobs}): false alarms {false_alarms}, misses {misses}, flips {flips},"
        f" invalid runs {invalid}; runs kept in {root}"
    )
    return 0 if false_alarms == misses == flips == invalid == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
