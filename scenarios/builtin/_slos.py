"""The SLOs the built-ins share: the invariants every correct router holds, whatever
its policy (zero tolerance, router-agnostic, counted per call from the correlation of
client calls and upstream exchanges: analysis/queries.sql), and the policy figures
judged against the router profile the user declares (analysis/expect.py).

Each built-in states which invariants it judges (`invariants(...)`) and which policy
figures (`policy(expect, ...)`); a figure it does not judge is still measured and in
every report.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["INVARIANTS", "batch_mix", "client_timeout_s", "invariants", "policy"]

INVARIANTS: dict[str, dict[str, str]] = {
    "no_unrescued_failure": {
        "slo": "unrescued_failures == 0",
        "description": "no call failed while a healthy provider was available and the router"
        " never tried it (no failover)",
    },
    "no_wrong_answer": {
        "slo": "wrong_answers == 0",
        "description": "no answer contradicted the chain's truth (a forged value, a null"
        " result, a batch element carrying another's answer)",
    },
    "no_hung_call": {
        "slo": "hung_call_count == 0",
        "description": "no call was answered later than the router's deadline"
        " (expect.request_timeout_s + expect.hung_margin_s), or never",
    },
    "no_retry_storm": {
        "slo": "retry_storm_calls == 0",
        "description": "no call failed on one provider more than"
        " expect.max_attempts_per_provider times (a retry storm)",
    },
    "no_abandoned_provider": {
        "slo": "abandoned_providers == 0",
        "description": "every provider that carried traffic before its fault carried some"
        " again after it recovered (a breaker that never closes fails this)",
    },
    "majority_keeps_traffic": {
        "slo": "majority_dropped == 0",
        "description": "no honest provider lost its client traffic while a minority reported"
        " a head far ahead (following the highest head reported makes the honest"
        " majority look behind)",
    },
    "heads_monotonic": {
        "slo": "heads_backwards: count == 0",
        "description": "no client got a head lower than one answered before it asked",
    },
    "tags_monotonic": {
        "slo": "tags_behind: count == 0",
        "description": "no client got a safe or finalized block lower than one answered"
        " before it asked, nor a block for a tag below one answered for a tag trailing it"
        " (finalized <= safe <= latest)",
    },
    "no_retry_after_breach": {
        "slo": "retry_after_breach_count == 0",
        "description": "no call was sent to a rate-limited provider within the Retry-After"
        " it had just answered",
    },
    "ws_no_gap": {
        "slo": "ws_gap_blocks: count == 0",
        "description": "no subscription skipped a block, also one lost on a live socket",
    },
    "ws_no_duplicate": {
        "slo": "ws_duplicates: count == 0",
        "description": "no block was delivered twice",
    },
    "ws_in_order": {
        "slo": "ws_out_of_order: count == 0",
        "description": "no block came after a higher one",
    },
    "ws_chain": {
        "slo": "ws_parent_breaks: count == 0",
        "description": "each block's parent hash is the hash of the block before",
    },
}


def invariants(*names: str) -> list[dict[str, str]]:
    """The named invariants as SLO objects."""
    return [{"name": name, **INVARIANTS[name]} for name in names]


def policy(expect: Mapping[str, float], *names: str) -> list[dict[str, str]]:
    """The named policy figures as SLOs, each judged against the declared (else the
    default) value of its expectation."""
    e = expect
    table = {
        "route_away": {
            "slo": f"route_away_max_s <= {e['route_away_s']:g}",
            "description": f"the router stopped sending client calls to a failed provider"
            f" within {e['route_away_s']:g} s (expect.route_away_s) of each fault",
        },
        "come_back": {
            "slo": f"come_back_max_s <= {e['come_back_s']:g}",
            "description": f"a provider that carried traffic before its fault served clients"
            f" again within {e['come_back_s']:g} s (expect.come_back_s) of its recovery",
        },
        "wasted_attempts": {
            "slo": f"wasted_attempts_max <= {e['wasted_attempts_per_outage']:g}",
            "description": f"at most {e['wasted_attempts_per_outage']:g} client attempts per"
            " outage sent to the failed provider before routing away"
            " (expect.wasted_attempts_per_outage)",
        },
        "rate_limit_backoff": {
            "slo": "limit_backoff_breach_count == 0",
            "description": f"no call went to a rate-limited provider within"
            f" {e['rate_limit_backoff_s']:g} s (expect.rate_limit_backoff_s) of a limit"
            " answer that asked no back-off in a Retry-After header",
        },
        "ws_silence": {
            "slo": f"ws_silence_max_s <= {e['ws_silence_s']:g}",
            "description": f"no client subscription heard nothing for longer than"
            f" {e['ws_silence_s']:g} s (expect.ws_silence_s) while the chain had a block"
            " it had not got",
        },
        "overhead": {
            "slo": f"overhead: p(50) < {e['overhead_p50_ms']:g}",
            "description": f"the router's own time per call (service time minus the"
            f" upstream exchange) under {e['overhead_p50_ms']:g} ms at the median"
            " (expect.overhead_p50_ms)",
        },
        "memory_growth": {
            "slo": f"rss_kb_per_call_low95 <= {e['rss_growth_kb_per_request']:g}",
            "description": f"the router keeps under {e['rss_growth_kb_per_request']:g} KB per"
            " call served (the RSS slope's lower 95% bound; expect.rss_growth_kb_per_request)",
        },
    }
    return [{"name": name, **table[name]} for name in names]


def client_timeout_s(expect: Mapping[str, float]) -> float:
    """The load's own timeout: past the router's deadline and its margin, so that a
    hung call is measured as hung rather than cut short by the client."""
    return expect["request_timeout_s"] + expect["hung_margin_s"] + 2.0


def batch_mix() -> str:
    """The batches mixed into the built-ins' HTTP load: a fifth of the calls are
    batches of 2 or 3, so that a router that puts answers on the wrong ids is caught
    (loadgen checks each element against the truth for its own id)."""
    return "0.2:2=1,3=1"
