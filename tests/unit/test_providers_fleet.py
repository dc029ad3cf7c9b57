"""Pins providers.fleet: names, ports, command lines and URLs of a fleet's plan."""

from __future__ import annotations

import json

import pytest

from providers.fleet import plan_fleet, provider_names

G = 1_700_000_000_500_000_000


def ports(n: int) -> list[int]:
    return list(range(20000, 20000 + 2 * n + 1))


def test_names_run_from_a_to_z_then_double_letters():
    assert provider_names(3) == ["A", "B", "C"]
    assert provider_names(28)[-2:] == ["AA", "AB"]


def test_a_mock_fleet_shares_one_chain_and_sits_behind_one_proxy():
    plan = plan_fleet(3, "mock", ports(3), run_dir="/tmp/r", seed=7, genesis_ns=G,
                      behaviours={"B": {"head_lag": 2}})  # fmt: skip
    assert [m.name for m in plan.members] == ["A", "B", "C"]
    for m in plan.members:
        argv = list(m.argv)
        assert argv[:2] == ["-m", "providers.mock"]
        assert argv[argv.index("--seed") + 1] == "7"
        assert argv[argv.index("--genesis-ns") + 1] == str(G)
    b = list(plan.members[1].argv)
    assert json.loads(b[b.index("--behaviour") + 1]) == {"head_lag": 2}
    assert "--behaviour" not in plan.members[0].argv
    proxy = list(plan.proxy_argv)
    assert proxy[:2] == ["-m", "chaosproxy"]
    assert "--listen=A=20003=http://127.0.0.1:20000" in proxy
    assert proxy[proxy.index("--control-port") + 1] == "20006"
    assert plan.members[2].http_url == "http://127.0.0.1:20005/"
    assert plan.members[2].ws_url == "ws://127.0.0.1:20005/"
    lines = plan.summary_lines()
    assert lines[0].startswith("A  http http://127.0.0.1:20003/  ws ws://127.0.0.1:20003/")
    assert plan.router_upstreams()[0] == {
        "name": "A", "url": "http://127.0.0.1:20003/", "ws_url": "ws://127.0.0.1:20003/"
    }  # fmt: skip


def test_an_anvil_fleet_shares_one_genesis_timestamp():
    plan = plan_fleet(2, "anvil", ports(2), run_dir="/tmp/r", genesis_ns=G, block_time_ms=2000)
    for m in plan.members:
        argv = list(m.argv)
        assert argv[:2] == ["-m", "providers.anvil"]
        assert argv[argv.index("--timestamp") + 1] == str(G // 10**9)
        assert argv[argv.index("--block-time-ms") + 1] == "2000"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "geth"}, "kind must be one of mock, anvil"),
        ({"count": 0}, "count must be in 1..702, got 0"),
        ({"ports": [1, 2, 3, 4, 5, 6, 6]}, "ports must be 7 distinct ports"),
        ({"kind": "anvil", "block_time_ms": 500}, "multiple of 1000 for anvil"),
        ({"behaviours": {"Z": {}}}, "behaviour for 'Z': no such provider"),
        ({"behaviours": {"A": {"head_lag": -1}}}, "behaviour[A].head_lag must be >= 0"),
        ({"kind": "anvil", "behaviours": {"A": {}}}, "behaviours are for mock providers only"),
    ],
)
def test_bad_fleets_are_refused_naming_the_argument(kwargs, message):
    args = {"count": 3, "kind": "mock", "ports": ports(3), "run_dir": "/r", "genesis_ns": G}
    args.update(kwargs)
    count, kind, p = args.pop("count"), args.pop("kind"), args.pop("ports")
    with pytest.raises(ValueError) as e:
        plan_fleet(count, kind, p, **args)
    assert message in str(e.value)
