"""Baselines: a run's key figures saved with a tolerance and a direction each, and the
comparison of a later run against them. A regression makes the verdict exit 4.

Tolerances are relative (a share of the baseline's magnitude) for latencies and counts,
and absolute (in the figure's own unit) for rates and shares, the figures that lie in
[0, 1] by definition (`ABSOLUTE_TOLERANCES`, by name): a success rate falling from 1.0
to 0.91 is 9% relative, yet nine failed requests in a hundred."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "ABSOLUTE_TOLERANCES",
    "BASELINE_SCHEMA_VERSION",
    "DEFAULT_TOLERANCE",
    "DIRECTIONS",
    "INVARIANT_METRICS",
    "Comparison",
    "compare",
    "load_baseline",
    "make_baseline",
]

BASELINE_SCHEMA_VERSION = 1
# The default: a figure may be 10% worse than its baseline before it regresses.
DEFAULT_TOLERANCE = 0.10
# Which way is better, for every key figure a baseline compares. Figures not listed
# (request counts, failovers) describe the run rather than judge it.
# The invariants' counts (analysis/queries.sql): zero for every correct router.
INVARIANT_METRICS = (
    "unrescued_failures",
    "wrong_answers",
    "hung_call_count",
    "retry_storm_calls",
    "retry_after_breach_count",
    "abandoned_providers",
    "majority_dropped",
)
DIRECTIONS: dict[str, str] = {
    **{
        name: "lower"
        for name in (
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "latency_max_ms",
            "amplification",
            "retries_same_provider",
            "failover_extra_latency_ms",
            "failover_latency_p95_ms",
            "overhead_p50_ms",
            "overhead_p95_ms",
            "head_lag_max_blocks",
            "heads_backwards",
            "tags_behind",
            "ws_gap_blocks",
            "ws_duplicates",
            "ws_out_of_order",
            "ws_parent_breaks",
            "ws_delay_p95_ms",
            "ws_resubscribe_max_ms",
            "sut_rss_slope_mb_per_min",
            "sut_cpu_avg",
            "sut_cpu_max",
            "breaker_stop_max_ms",
            "wasted_attempts",
            "impact_max_ms",
            # Any worsening of a zero regresses. (The policy figures are judged against
            # the router profile; their run-to-run noise, a breaker's timing against the
            # load's ticks, would read as regressions.)
            *INVARIANT_METRICS,
        )
    },
    "success_rate": "higher",
    "correlation_coverage": "higher",
    "late_sends_share": "lower",
}
# Rates and shares, in [0, 1] by definition, with their default absolute tolerance: a
# figure named here may move by that much (not by that share of itself) before it
# regresses. Every other figure's tolerance is relative.
ABSOLUTE_TOLERANCES: dict[str, float] = {
    "success_rate": 0.01,
    "correlation_coverage": 0.01,
    "late_sends_share": 0.01,
    "requests_not_sent_share": 0.01,
    "requests_missing_share": 0.01,
}
TOLERANCE_KINDS = ("relative", "absolute")


def tolerance_kind(name: str) -> str:
    """``absolute`` for the rates and shares of `ABSOLUTE_TOLERANCES`, else ``relative``."""
    return "absolute" if name in ABSOLUTE_TOLERANCES else "relative"


@dataclass(frozen=True)
class Comparison:
    metric: str
    baseline: float | None
    observed: float | None
    direction: str
    tolerance: float
    # Relative change (observed / baseline - 1); None when the baseline is 0 or absent.
    change: float | None
    regressed: bool
    note: str = ""
    # ``relative``: the figure may worsen by tolerance * |baseline|; ``absolute``: by
    # tolerance itself (rates and shares).
    tolerance_kind: str = "relative"

    @property
    def tolerance_text(self) -> str:
        """The tolerance as the comparison output shows it, naming its kind:
        ``10% relative`` or ``0.01 absolute``."""
        if self.tolerance_kind == "absolute":
            return f"{self.tolerance:g} absolute"
        return f"{self.tolerance:.0%} relative"

    def as_dict(self) -> dict:
        return asdict(self)


def make_baseline(
    run: str,
    metrics: dict[str, float | None],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    overrides: dict[str, dict] | None = None,
) -> dict:
    """The baseline document of a run: every directed figure with a value.

    `tolerance` is the relative tolerance of every figure but the rates and shares,
    which get their absolute one from `ABSOLUTE_TOLERANCES`; `overrides` replaces
    fields per figure (``tolerance_kind``: ``relative`` or ``absolute`` overrides the
    name's kind).
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    overrides = overrides or {}
    figures = {}
    for name, direction in DIRECTIONS.items():
        value = metrics.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        # The kind is the name's (`tolerance_kind`); a file may say otherwise per figure.
        figures[name] = {
            "value": value,
            "direction": direction,
            "tolerance": ABSOLUTE_TOLERANCES.get(name, tolerance),
        }
        figures[name].update(overrides.get(name, {}))
    return {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "kind": "battle-baseline",
        "run": run,
        "metrics": figures,
    }


def load_baseline(path: Path) -> dict:
    """Reads and checks a baseline file.

    Raises:
        ValueError: naming the bad field.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"baseline {path}: cannot read it: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "battle-baseline":
        raise ValueError(f"baseline {path}: kind must be 'battle-baseline'")
    if doc.get("schema_version") != BASELINE_SCHEMA_VERSION:
        raise ValueError(
            f"baseline {path}: schema_version must be {BASELINE_SCHEMA_VERSION},"
            f" got {doc.get('schema_version')!r}"
        )
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"baseline {path}: metrics must be an object")
    for name, fig in metrics.items():
        where = f"baseline {path}: metrics.{name}"
        if not isinstance(fig, dict) or not isinstance(fig.get("value"), int | float):
            raise ValueError(f"{where}.value must be a number")
        if fig.get("direction") not in ("lower", "higher"):
            raise ValueError(f"{where}.direction must be 'lower' or 'higher'")
        tol = fig.get("tolerance", DEFAULT_TOLERANCE)
        if not isinstance(tol, int | float) or tol < 0:
            raise ValueError(f"{where}.tolerance must be a number >= 0, got {tol!r}")
        kind = fig.get("tolerance_kind", tolerance_kind(name))
        if kind not in TOLERANCE_KINDS:
            raise ValueError(
                f"{where}.tolerance_kind must be 'relative' or 'absolute', got {kind!r}"
            )
    return doc


def compare(metrics: dict[str, float | None], baseline: dict) -> list[Comparison]:
    """Each baseline figure against the run's: regressed when it moved the wrong way by
    more than its tolerance: `tolerance` itself for an absolute one (rates and shares),
    `tolerance` times the baseline's magnitude for a relative one (any worsening of a
    zero). A figure's kind is its `tolerance_kind` in the file, else its name's."""
    out = []
    for name, fig in baseline["metrics"].items():
        base = float(fig["value"])
        direction = fig["direction"]
        kind = fig.get("tolerance_kind") or tolerance_kind(name)
        default = ABSOLUTE_TOLERANCES.get(name, DEFAULT_TOLERANCE)
        tol = float(fig.get("tolerance", default))
        observed = metrics.get(name)
        if observed is None or (isinstance(observed, float) and math.isnan(observed)):
            out.append(
                Comparison(
                    name, base, None, direction, tol, None, True, "no value in this run", kind
                )
            )
            continue
        worse_by = observed - base if direction == "lower" else base - observed
        allowed = tol if kind == "absolute" else tol * abs(base)
        # The epsilon keeps float rounding (1.0 - 0.99 > 0.01) from deciding an edge.
        regressed = worse_by > allowed + 1e-9 * max(1.0, abs(base))
        change = observed / base - 1 if base else None
        out.append(Comparison(name, base, observed, direction, tol, change, regressed, "", kind))
    return out
