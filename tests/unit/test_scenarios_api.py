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
    ({"expect": {"comeback_s": 3}}, "expect.comeback_s is not a known expectation; known: "),
    ({"expect": {"come_back_s": 0}}, "expect.come_back_s must be a number > 0, got 0"),
    (
        {"expect": {"rate_limit_backoff_s": -1}},
        "expect.rate_limit_backoff_s must be a number >= 0, got -1",
    ),
    ({"expect": [1]}, "expect must be a table of expectations"),
    ({"sut": Sut(path="v1/key")}, "sut.path must be a path starting with '/'"),
    ({"sut": Sut(path="/a b")}, "sut.path must be a URL path without spaces"),
    ({"sut": managed(["r", "--port={{ port"])}, "sut.command[1] is not a valid jinja2 template"),
    ({"sut": managed(["r", "--cfg={{ config }}"])}, "sut.command uses {config} but"),
    ({"sut": managed(["r", {"each": "upstreams"}])}, "sut.command[1] needs exactly one of arg"),
    ({"sut": managed(["r", {"each": "ups", "argz": "x"}])}, "sut.command[1].argz is not a known"),
    ({"sut": managed(["r", {"each": "1x", "arg": "x"}])}, "sut.command[1].each must name a var"),
    ({"sut": managed(["r", 5])}, "sut.command[1] must be a string or an {each, as, args} table"),
    ({"sut": reference_router(port=1)}, "sut.options.port is set by the runner"),
    ({"sut": managed(["r", "--p={{ prot }}"])}, "sut.command[1] uses 'prot', which is neither"),
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
        # The load as run (extended past the last fault's come-back), plus start-up
        # and judging: under 60 s.
        assert fast.load_duration_s <= 40, name
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


def test_expectations_are_declared_resolved_and_round_trip_through_the_dict_form():
    s = scenario(expect={"come_back_s": 30, "route_away_s": 4})
    assert s.to_dict()["expect"] == {"come_back_s": 30.0, "route_away_s": 4.0}
    assert Scenario.from_dict(s.to_dict()) == s
    from analysis.expect import EXPECTATIONS

    resolved = s.resolved()
    assert set(resolved["expect"]) == set(EXPECTATIONS)
    assert resolved["expect"]["come_back_s"] == 30.0
    assert resolved["expect"]["recovery_s"] == EXPECTATIONS["recovery_s"].default
    assert resolved["expect_declared"] == ["come_back_s", "route_away_s"]
    assert "expect" not in scenario().to_dict()


def test_with_faults_the_load_runs_past_the_last_one_for_the_declared_come_back():
    # The fault ends at 5 s: 5 + come_back_s 15 (default) + 2 = 22 s of load, not 10.
    judged = ["abandoned_providers == 0"]
    s = scenario(slos=judged)
    assert scenario().load_duration_s == 10, "no SLO judges a come-back: as declared"
    assert (s.duration_s, s.last_fault_end_s, s.load_duration_s) == (10, 5, 22)
    assert (s.resolved()["duration_s"], s.resolved()["duration_s_declared"]) == (22, 10)
    assert scenario(slos=judged, expect={"come_back_s": 30}).load_duration_s == 37
    assert scenario(slos=judged, expect={"come_back_s": 1}).load_duration_s == 10, "long enough"
    assert scenario(slos=judged, faults=[]).load_duration_s == 10, "no fault, no come-back"
    # The TOML form keeps what was declared, so that it round-trips.
    assert s.to_dict()["duration_s"] == 10


def test_the_redactor_masks_the_suts_url_keys_client_path_and_credential_options():
    url_key, path_key, opt_key = "a1" * 16, "b2" * 16, "c3-secret-value"
    ext = scenario(sut=external(f"http://127.0.0.1:9/rpc/{url_key}", path=f"/v1/{path_key}"))
    assert ext.redactor.text(f"GET /rpc/{url_key} POST /v1/{path_key}") == "GET /rpc/*** POST ***"
    assert path_key not in ext.redactor.text(f"key {path_key} alone")
    opts = scenario(sut=managed(["r"], api_key=opt_key, auth={"user": "someone-x"}, tier="gold1x"))
    public = str(opts.public())
    assert opt_key not in public and "someone-x" not in public
    assert "gold1x" in public, "only options named like a credential are masked"
    assert opts.redactor.text(f"k={opt_key}") == "k=***"


def test_a_builtins_build_gets_the_resolved_expectations_and_the_result_records_them(
    monkeypatch,
):
    builtin = importlib.import_module("scenarios.builtin")
    seen = {}

    def new_style(full, expect):
        seen.update(expect)
        return scenario(slos=[f"traffic_return: max < {expect['come_back_s'] * 1000:g}"])

    def old_style(full=False):
        return scenario(duration_s=20 if full else 10)

    monkeypatch.setattr(builtin, "_REGISTRY", {})
    builtin.builtin("new_style", "takes the expectations")(new_style)
    builtin.builtin("old_style", "takes full only")(old_style)
    s = builtin._REGISTRY["new_style"].scenario(expect={"come_back_s": 30})
    assert seen["come_back_s"] == 30.0 and seen["route_away_s"] == 8.0
    assert s.expect == {"come_back_s": 30.0}
    assert s.slos[0].to_json()["slo"] == "traffic_return: max < 30000"
    old = builtin._REGISTRY["old_style"].scenario(full=True, expect={"route_away_s": 2})
    assert (old.duration_s, old.expect) == (20, {"route_away_s": 2.0})
    with pytest.raises(ConfigError, match=r"expect\.nope is not a known expectation"):
        builtin._REGISTRY["old_style"].scenario(expect={"nope": 1})
    assert builtin.takes_expect(new_style) and not builtin.takes_expect(old_style)


def test_a_managed_sut_with_expanding_items_and_a_client_path_round_trips():
    sut = managed(
        ["{{ python }}", "r.py", {"each": "upstreams", "as": "u", "arg": "--up={{ u.url }}"},
         "--mode={{ mode }}"],
        path="/v1/KEY", mode="fast",
    )  # fmt: skip
    s = scenario(sut=sut)
    each = {"each": "upstreams", "as": "u", "arg": "--up={{ u.url }}"}
    assert s.to_dict()["sut"]["command"][2] == each
    assert s.to_dict()["sut"]["path"] == "/v1/KEY"
    assert Scenario.from_dict(s.to_dict()).sut == s.sut
