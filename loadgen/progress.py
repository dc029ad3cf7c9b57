"""The live progress line of a worker on a terminal. Pure formatting, plus a thin
trio task that redraws it once a second (only when the output is a terminal)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import trio

from .worker import WINDOW_S, Clock, Summary

__all__ = ["PlannedFault", "active_faults", "load_fault_plan", "progress_line", "show_progress"]


PlannedFault = tuple[str, int, int]  # fault_id, planned start and end, epoch ns


def load_fault_plan(path: Path, t0_ns: int) -> list[PlannedFault]:
    """Reads a chaos plan (a JSON list of faults with `fault_id`, `start_s`,
    `duration_s`), for showing which faults should be active now."""
    faults = []
    for i, f in enumerate(json.loads(path.read_text())):
        try:
            start = t0_ns + round(float(f["start_s"]) * 1e9)
            faults.append((str(f["fault_id"]), start, start + round(float(f["duration_s"]) * 1e9)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"faults[{i}] needs fault_id, start_s and duration_s: {exc}") from None
    return faults


def active_faults(plan: Sequence[PlannedFault], now_ns: int) -> list[str]:
    return [fid for fid, start, end in plan if start <= now_ns < end]


def progress_line(
    summary: Summary, elapsed_s: float, rate: float, window: int, faults: Sequence[str]
) -> str:
    """One line: achieved rate, success share, p50/p99 of the current window, in flight,
    not sent, faults planned to be active."""
    done = sum(summary.outcomes.values())
    ok = summary.outcomes.get("ok", 0)
    h = summary.by_window.get(window)
    p50 = h.get_value_at_percentile(50) / 1000 if h else 0.0
    p99 = h.get_value_at_percentile(99) / 1000 if h else 0.0
    success = f"{100 * ok / done:5.1f}%" if done else "    -"
    return (
        f"{elapsed_s:6.1f}s {rate:9,.0f} req/s  ok {success}  p50 {p50:7.2f} ms"
        f"  p99 {p99:7.2f} ms ({WINDOW_S} s)  in flight {summary.in_flight:5d}"
        f"  not sent {summary.not_sent}  faults {','.join(faults) or '-'}"
    )


async def show_progress(
    summary: Summary, clock: Clock, t0_ns: int, out: TextIO, plan: Sequence[PlannedFault] = ()
) -> None:
    """Redraws the line once a second until cancelled."""
    last_sent, last_t = summary.sent, clock.now_ns()
    while True:
        await trio.sleep(1.0)
        now = clock.now_ns()
        rate = (summary.sent - last_sent) * 1e9 / max(now - last_t, 1)
        last_sent, last_t = summary.sent, now
        window = max(now - t0_ns, 0) // (WINDOW_S * 1_000_000_000)
        line = progress_line(summary, (now - t0_ns) / 1e9, rate, window, active_faults(plan, now))
        out.write("\r" + line)
        out.flush()
