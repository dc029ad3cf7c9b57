"""The verdict matrix: the built-ins' fast forms against routers Battle did not write
(tests/routers/), each correct by default and each with defects planted in it.

Every correct router must pass every built-in it can run; every defect must fail the
built-in that names it, on the SLO that names it, in a valid run (a router's defect is
never an invalid run). `tests/e2e/test_matrix.py` runs each cell once (CI);

    .venv/bin/python tests/e2e/matrix.py --repeat 3 [--jobs 2] [--only aio]

(`make matrix`) runs every cell N times and prints the table: false alarms (a correct
router failed or came out invalid), misses (a defect passed, or failed on other SLOs
only, or came out invalid) and flips (a cell whose verdict differed between repeats).
"""

from __future__ import annotations

import argparse
import json
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
SUT_FILES = {
    "aio": ROUTERS_DIR / "aio_priority.sut.toml",
    "node": ROUTERS_DIR / "node_roundrobin.sut.toml",
}
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
# router: the built-in must fail it, on that invariant (a finding, not a false alarm).
FINDINGS = {
    ("node", "stale_head"): (
        "heads_monotonic",
        "node_roundrobin reads no JSON-RPC and tracks no heads (as nginx and HAProxy):"
        " round robin hands its clients A's lagging head after B's",
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

    @property
    def id(self) -> str:
        return f"{self.router}-{self.defect or 'correct'}-{self.builtin}"

    @property
    def must_fail(self) -> bool:
        return bool(self.caught_by)


def _defect(router: str, defect: str, builtin: str, *slos: str) -> Cell:
    return Cell(router, builtin, defect, frozenset(slos))


CORRECT = tuple(
    Cell(router, builtin, None, frozenset({FINDINGS[router, builtin][0]}),
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
    _defect("aio", "head_backwards", "stale_head", "heads_monotonic"),
    _defect("aio", "no_head_tracking", "stale_head", "heads_monotonic"),
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
    started = time.monotonic()
    result = run_battle(args, timeout=timeout)
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
    p.add_argument("--only", help="only cells whose id contains this text")
    p.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.jobs < 1:
        p.error("--repeat and --jobs must be >= 1")
    cells = [c for c in CELLS if not args.only or args.only in c.id]
    if not cells:
        p.error(f"--only {args.only!r} matches no cell")
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
