"""The Scenario API validates every field eagerly and round-trips its declarative form."""

from __future__ import annotations

import importlib

import pytest

from analysis import Check
from scenarios import (
    ConfigError,
    Fault,
    HttpLoad,
    Scenario,
    Sut,
    WsLoad,
    anvil,
    external,
    managed,
    mock,
    reference_router,
    remote,
)
from scenarios.builtin import get, registry


def scenario(**changes) -> Scenario:
    base = dict(
        name="t",
        providers=[mock("A"), mock("B")],
        workloads=[HttpLoad(rate=10)],
        duration_s=10,
        faults=[Fault("A", "reset", start_s=2, duration_s=3)],
        slos=["success_rate >= 0.99", "latency{phase:steady}: p(95) < 300"],
    )
    base.update(changes)
    return Scenario(**base)


BAD = [
    ({"name": "a b"}, "name must be 1-60 letters"),
    ({"duration_s": 0}, "duration_s must be > 0, got 0"),
    ({"providers": []}, "providers must name at least one provider"),
    ({"providers": [mock("A"), mock("A")]}, "providers[1].name 'A' is used twice"),
    ({"providers": [mock("A"), anvil("B")]}, "providers mix mock and anvil"),
    ({"workloads": []}, "workloads must name at least one"),
    ({"workloads": [HttpLoad(rate=-5)]}, "workloads[0].rate must be > 0, got -5"),
    ({"workloads": [HttpLoad()]}, "workloads[0] needs exactly one of rate or arrival"),
    ({"workloads": [HttpLoad(arrival="wobble:3")]}, "workloads[0]: "),
    ({"workloads": [HttpLoad(rate=5, mix="eth_nope=1")]}, "workloads[0]: "),
    (
        {"workloads": [HttpLoad(rate=5, workers=2), WsLoad(workers=2)]},
        "workloads[1].workers must be 1",
    ),
    ({"faults": [Fault("Z", "reset", 1, 2)]}, "faults[0].provider"),
    ({"faults": [Fault("A", "latency", 1, 2)]}, "faults[0].params.ms is required"),
    ({"faults": [Fault("A", "reset", 8, 5)]}, "faults[0] must end within the load's duration"),
    ({"slos": ["latency: p(95) <"]}, "slos[0]: SLO 'latency: p(95) <' must read"),
    ({"slos": [{"name": "x", "sql": "SELECT 1", "expect": "about 5"}]}, "slos[0]: SLO 'x'"),
    ({"sut": reference_router(listen="x")}, "sut.options.listen is set by the runner"),
    ({"sut": managed([])}, "sut.command must be a non-empty list"),
    ({"sut": managed(["nginx", "-c", "{config}"])}, "sut.command uses {config} but"),
    ({"sut": managed(["x", "{cfg}"], template="t.j2")}, "sut.command[1] may use only"),
    ({"sut": external("ftp://x")}, "sut.url must be the http(s) URL"),
    (
        {"sut": external("http://127.0.0.1:9/", listen_ports=[7001])},
        "sut.listen_ports must give one port per provider (2), got 1",
    ),
    ({"sut": Sut(listen_ports=(7001, 7002))}, "sut.listen_ports is for kind 'external' only"),
    ({"sut": reference_router(), "analysis": {"nope": 1}}, "analysis.nope is not a known field"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_field_raises_one_config_error_naming_it(changes, message):
    with pytest.raises(ConfigError) as info:
        scenario(**changes)
    assert message in str(info.value)


def test_the_reference_routers_bad_option_is_caught_when_its_config_is_rendered(tmp_path):
    from scenarios.sut import plan_sut, upstreams_for

    s = scenario(sut=reference_router(strategy="sideways"))
    with pytest.raises(ConfigError, match=r"sut\.options: the reference router rejects"):
        plan_sut(s.sut, 5000, upstreams_for(s.providers, [6001, 6002]), tmp_path)


def test_a_good_scenario_fills_in_fault_ids_and_parses_slos():
    s = scenario(faults=[Fault("A", "reset", 1, 2), Fault("A", "reset", 4, 2)])
    assert [f.fault_id for f in s.faults] == ["a-reset", "a-reset-2"]
    assert s.slos[0].name == "success_rate"
    assert isinstance(s.slos[0], Check)


def test_the_dict_form_round_trips_to_an_equal_scenario():
    s = scenario(
        providers=[mock("A", latency={"dist": "fixed", "ms": 5}), mock("B")],
        workloads=[HttpLoad(rate=10, workers=2), WsLoad(subscriptions="newHeads=2")],
        sut=reference_router(failover=False, strategy="priority"),
        slos=[
            "success_rate >= 0.99",
            {"name": "few", "sql": "SELECT count(*) FROM requests", "expect": "< 5"},
        ],
        analysis={"recovery_window_s": 3},
    )
    again = Scenario.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()


def test_secrets_of_remote_providers_are_masked_in_the_public_form():
    key = "0123456789abcdef0123456789abcdef"
    s = scenario(
        providers=[remote("A", f"https://mainnet.infura.io/v3/{key}"), mock("B")],
        faults=[],
    )
    assert key in str(s.to_dict())
    assert key not in str(s.public()) and "***" in str(s.public())
    assert s.redactor.text(f"log line {key}") == "log line ***"


def test_every_builtin_has_a_fast_form_within_a_minute_and_a_full_form():
    assert {"http_failover", "demo"} <= set(registry())
    for name, entry in registry().items():
        fast, full = entry.scenario(), entry.scenario(full=True)
        assert fast.duration_s <= 40, name  # plus start-up and judging: under 60 s
        assert full.duration_s >= fast.duration_s, name
        assert entry.description and "\n" not in entry.description


def test_built_ins_are_listed_in_modules_order_whichever_registered_first(monkeypatch):
    builtin = importlib.import_module("scenarios.builtin")
    entries = list(registry().values())
    assert [b.name for b in entries] == list(builtin.MODULES)
    # A test importing one module directly registers its built-in before the others.
    monkeypatch.setattr(builtin, "_REGISTRY", {b.name: b for b in reversed(entries)})
    assert list(registry()) == list(builtin.MODULES)
    with pytest.raises(ConfigError, match="known: http_failover, provider_degradation,"):
        get("x")


def test_an_unknown_builtin_names_the_known_ones():
    with pytest.raises(ConfigError, match="no built-in scenario 'nope'; known: http_failover"):
        get("nope")
