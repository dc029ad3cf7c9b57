"""The router profile a scenario declares: what the user expects of their router's
policy (`expect = { come_back_s = 30, ... }` in a scenario, `--expect KEY=VALUE` on
the command line).

Invariants (no unrescued failure, no wrong answer, no hung call, ...) hold for every
correct router whatever it declares. Policy figures (route-away, come-back, overhead,
memory growth, ...) are always measured and reported; the built-ins judge them against
these values. Each default is one that any reasonable production router meets, and
says where it comes from, so that a router is not failed for being tuned otherwise
than ours: a user who declares tighter figures holds their router to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EXPECTATIONS", "Expectation", "resolve_expect"]


@dataclass(frozen=True)
class Expectation:
    """One declarable figure: its default, unit and where the default comes from."""

    name: str
    default: float
    unit: str
    meaning: str
    source: str
    # 0 is a meaningful value (a figure that declares "none owed"), not a mistake.
    zero_allowed: bool = False


EXPECTATIONS: dict[str, Expectation] = {
    e.name: e
    for e in (
        Expectation(
            "request_timeout_s",
            10.0,
            "s",
            "the router's own deadline for one client call: a call answered later (plus"
            " hung_margin_s), or never, is a hung call",
            "web3.py's HTTPProvider gives up on a call after 10 s; a router slower than"
            " its clients' timeout serves nobody",
        ),
        Expectation(
            "hung_margin_s",
            1.0,
            "s",
            "slack on request_timeout_s before a call counts as hung (scheduling, the"
            " last attempt's answer in flight)",
            "one second: far above the loopback stack's few ms, far below any deadline",
        ),
        Expectation(
            "attempt_timeout_s",
            5.0,
            "s",
            "longest the router waits on one provider before it gives up on that attempt"
            " (a call to a hung provider is answered from another within this, plus"
            " hung_margin_s)",
            "half of request_timeout_s: a router must leave time for a second attempt"
            " within its clients' deadline",
        ),
        Expectation(
            "route_away_s",
            8.0,
            "s",
            "longest time the router may keep sending client calls to a failed"
            " provider before it stops (breaker, health check or passive ejection)",
            "HAProxy's default active check (inter 2 s, fall 3) takes 6 s to mark a"
            " server down; 8 s leaves one more check",
        ),
        Expectation(
            "come_back_s",
            15.0,
            "s",
            "longest time after a provider recovers until the router sends it client"
            " traffic again (of the providers that carried traffic before their fault)",
            "nginx marks a failed server unavailable for fail_timeout, 10 s by default;"
            " a 5 s breaker doubled once after a failed probe reopens at 10 s too; 5 s"
            " margin for the probe and the first call",
        ),
        Expectation(
            "max_attempts_per_provider",
            3.0,
            "attempts",
            "most attempts one client call may make on one provider (more is a retry"
            " storm on a failing provider)",
            "HAProxy retries a server 3 times by default (`retries 3`); proxyd and"
            " eRPC retry each upstream at most a few times",
        ),
        Expectation(
            "wasted_attempts_per_outage",
            60.0,
            "attempts",
            "client attempts a router may send to a provider in one outage before it routes away",
            "route_away_s at the built-ins' 40 req/s is up to 320; a router with a"
            " breaker or health check (HAProxy with checks: ~30 per outage measured)"
            " stays far below, one without sends every call first to the dead provider",
        ),
        Expectation(
            "overhead_p50_ms",
            5.0,
            "ms",
            "median time the router adds to a call (client service time minus the"
            " upstream exchange's time)",
            "nginx, HAProxy and the reference router add under 1 ms on loopback"
            " (bench/router_throughput.py); 5 ms is generous for a router in any stack",
        ),
        Expectation(
            "rss_growth_kb_per_request",
            0.5,
            "KB",
            "resident memory the router may keep per client call served (a leak's slope)",
            "a router that does not leak keeps a flat RSS once warm; 0.5 KB per call"
            " is under what a leak of one small object per call keeps",
        ),
        Expectation(
            "rate_limit_backoff_s",
            0.0,
            "s",
            "how long the router stays away from a provider after a limit answer that"
            " asks no back-off in a Retry-After header (a hint in the body, or none);"
            " 0 declares none owed",
            "RFC 6585 section 4 leaves Retry-After optional and asks nothing without it;"
            " proxyd and client-side fallbacks retry a limited call elsewhere and return"
            " with the next one, while nginx benches a 429 for fail_timeout only where"
            " proxy_next_upstream names http_429",
            zero_allowed=True,
        ),
        Expectation(
            "ws_silence_s",
            10.0,
            "s",
            "longest a client's subscription may hear nothing while the chain has a"
            " block it has not got (a silent upstream socket noticed, the subscription"
            " moved, the missed blocks delivered)",
            "route_away_s (8 s) to notice a silent upstream as any failed provider, and"
            " 2 s to subscribe elsewhere and fetch the missed blocks",
        ),
        Expectation(
            "recovery_s",
            15.0,
            "s",
            "longest time after every provider is back until clients are served as before",
            "come_back_s: the same breaker or ejection has to let a provider back in",
        ),
    )
}


def resolve_expect(given: Mapping[str, object] | None) -> dict[str, float]:
    """Every expectation: the declared value where `given` has one, else its default.

    Raises:
        ValueError: `given` names an unknown key or a value that is not a number > 0
            (>= 0 where the expectation allows 0).
    """
    given = dict(given or {})
    out: dict[str, float] = {}
    for key, value in given.items():
        if key not in EXPECTATIONS:
            raise ValueError(
                f"expect.{key} is not a known expectation; known: {', '.join(EXPECTATIONS)}"
            )
        floor = ">=" if EXPECTATIONS[key].zero_allowed else ">"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not (value >= 0 if floor == ">=" else value > 0):
            raise ValueError(f"expect.{key} must be a number {floor} 0, got {value!r}")
    for name, e in EXPECTATIONS.items():
        out[name] = float(given.get(name, e.default))
    return out
