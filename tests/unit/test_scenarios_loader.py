"""Scenario files (.py, .toml), built-in names, CLI overrides and the printed plan."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from scenarios import ConfigError, HttpLoad
from scenarios.loader import apply_overrides, describe_plan, load_scenario, parse_set

TOML = """
name = "from-toml"
duration_s = 12
seed = 7
slos = [
  "success: rate >= 0.99",
  { name = "p95", slo = "latency{phase:steady}: p(95) < 300" },
  { name = "few", expect = "< 5", sql = "SELECT count(*) FROM requests WHERE outcome <> 'ok'" },
]

[[providers]]
name = "A"
behaviour = { latency = { dist = "fixed", ms = 5 } }

[[providers]]
name = "B"

[sut]
kind = "reference"
options = { strategy = "priority", failover = true }

[[workloads]]
kind = "http"
rate = 20
mix = "eth_blockNumber=1"

[[workloads]]
kind = "ws"
subscriptions = "newHeads=2"
reconnect = false

[[faults]]
provider = "A"
kind = "http_error"
start_s = 2
duration_s = 6
params = { status = 503 }
schedule = { flap = { down_s = 2, up_s = 2, count = 2 } }

[full]
duration_s = 60
workloads = [{ kind = "http", rate = 100 }]
"""


FULL_REMOTE = """[[providers]]
name = "R"
kind = "remote"
url = "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef"  # your key, masked
ws_url = "wss://mainnet.infura.io/ws/v3/0123456789abcdef0123456789abcdef"
headers = { "X-Api-Key" = "..." }                # see "Limits" below
"""
WORKLOAD = "\n[[workloads]]\nrate = 10\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_toml_file_maps_every_field_onto_the_api(tmp_path):
    s, form = load_scenario(str(write(tmp_path, "s.toml", TOML)))
    assert (s.name, s.duration_s, s.seed, form) == ("from-toml", 12, 7, "fast")
    assert s.providers[0].behaviour == {"latency": {"dist": "fixed", "ms": 5}}
    assert s.sut.options == {"strategy": "priority", "failover": True}
    assert s.workloads[1].reconnect is False
    assert s.faults[0].fault_id == "a-http_error"
    assert [x.name for x in s.slos] == ["success: rate >= 0.99", "p95", "few"]


def test_the_full_table_is_merged_over_the_file_for_the_full_form(tmp_path):
    s, form = load_scenario(str(write(tmp_path, "s.toml", TOML)), full=True)
    assert (s.duration_s, form, s.workloads) == (60, "full", (HttpLoad(rate=100),))


def test_a_bad_toml_field_names_the_file_and_the_field(tmp_path):
    path = write(tmp_path, "s.toml", TOML.replace("rate = 20", "rate = -20"))
    with pytest.raises(ConfigError, match=r"s.toml: workloads\[0\].rate must be > 0, got -20"):
        load_scenario(str(path))
    path = write(tmp_path, "t.toml", TOML.replace("seed = 7", "sead = 7"))
    with pytest.raises(ConfigError, match=r"scenario\.sead is not a known field"):
        load_scenario(str(path))


def test_a_python_file_defines_scenario_or_build(tmp_path):
    body = textwrap.dedent("""
        from scenarios import Scenario, HttpLoad, mock
        def build(full=False):
            return Scenario(name="py", providers=[mock("A")],
                            workloads=[HttpLoad(rate=100 if full else 10)], duration_s=5)
    """)
    path = write(tmp_path, "s.py", body)
    assert load_scenario(str(path))[0].workloads[0].rate == 10
    assert load_scenario(str(path), full=True)[0].workloads[0].rate == 100
    plain = write(tmp_path, "p.py", body + "\nscenario = build()\ndel build\n")
    assert load_scenario(str(plain))[0].name == "py"
    empty = write(tmp_path, "e.py", "x = 1\n")
    with pytest.raises(ConfigError, match="must define `scenario`"):
        load_scenario(str(empty))
    broken = write(tmp_path, "b.py", "raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        load_scenario(str(broken))


SETS = [
    ("sut.options.failover=false", ["sut", "options", "failover"], False),
    ("workloads[0].rate=12.5", ["workloads", "0", "rate"], 12.5),
    ("faults.0.params={status = 429}", ["faults", "0", "params"], {"status": 429}),
    ("name=plain-word", ["name"], "plain-word"),
]


@pytest.mark.parametrize(("item", "parts", "value"), SETS)
def test_set_reads_a_dotted_path_and_a_toml_literal(item, parts, value):
    assert parse_set(item) == (parts, value)


def test_overrides_apply_and_are_validated_again():
    base, _ = load_scenario("http_failover")
    s = apply_overrides(
        base,
        rate=7,
        seed=3,
        sets=["sut.options.failover=false", "workloads.0.workers=2"],
    )
    assert (s.workloads[0].rate, s.workloads[0].workers, s.seed) == (7, 2, 3)
    assert s.sut.options["failover"] is False
    ext = apply_overrides(base, sut_url="http://127.0.0.1:8545/")
    assert (ext.sut.kind, ext.sut.url) == ("external", "http://127.0.0.1:8545/")
    assert {p.kind for p in apply_overrides(base, providers="anvil").providers} == {"anvil"}
    with pytest.raises(ConfigError, match="faults\\[0\\] must end within the load's duration"):
        apply_overrides(base, duration=5)
    with pytest.raises(ConfigError, match="--set 'nope' must read key=value"):
        apply_overrides(base, sets=["nope"])
    with pytest.raises(ConfigError, match="--providers must be mock, anvil or"):
        apply_overrides(base, providers="geth")


def test_the_plan_shows_every_part_with_secrets_masked():
    base, form = load_scenario("http_failover")
    key = "0123456789abcdef0123456789abcdef"
    s = apply_overrides(base, sets=[f'providers.2={{name = "C", url = "https://x.io/v3/{key}"}}'])
    plan = describe_plan(s, form)
    assert key not in plan and "https://x.io/v3/***" in plan
    for needle in ("fast form", "provider A: mock", "sut: reference", "workload 0: http",
                   "fault a-flap: reset on A", "slo route_away"):  # fmt: skip
        assert needle in plan, needle


def test_the_documented_toml_examples_are_valid_scenarios(tmp_path):
    doc = (Path(__file__).parents[2] / "docs" / "scenarios.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", doc, re.S)
    full, managed_sut = blocks[0], blocks[1]
    s, _ = load_scenario(str(write(tmp_path, "doc.toml", full)))
    assert [p.kind for p in s.providers] == ["mock", "mock", "remote"]
    assert "0123456789abcdef" not in str(s.public())
    assert load_scenario(str(tmp_path / "doc.toml"), full=True)[0].duration_s == 120
    base = full.split("[sut]")[0].replace(FULL_REMOTE, "")
    m, _ = load_scenario(str(write(tmp_path, "m.toml", base + managed_sut + WORKLOAD)))
    assert (m.sut.kind, m.sut.metrics_path, m.sut.template) == (
        "managed",
        None,
        str(tmp_path / "nginx.conf.j2"),
    )
