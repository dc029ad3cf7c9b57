"""Scenario files (.py, .toml), built-in names, CLI overrides and the printed plan."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from scenarios import ConfigError, HttpLoad
from scenarios.loader import (
    apply_overrides,
    describe_plan,
    expect_from_sets,
    load_scenario,
    load_sut_file,
    parse_expect,
    parse_set,
)

TOML = """
name = "from-toml"
duration_s = 12
seed = 7
slos = [
  "success: rate >= 0.99",
  { name = "p95", slo = "latency{phase:steady}: p(95) < 300" },
  { name = "back", slo = "come_back_max_s <= 30" },
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
    assert [x.name for x in s.slos] == ["success: rate >= 0.99", "p95", "back", "few"]


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


SUT_FILE = """
[sut]
kind = "managed"
command = ["{{ python }}", "router.py", "--listen=127.0.0.1:{{ port }}", "--key-file",
           "missing.txt", { each = "upstreams", as = "u", arg = "--upstream={{ u.url }}" }]
template = "router.toml.j2"
config_name = "router.toml"
path = "/v1/0123456789abcdef0123456789abcdef"
options = { api_key = "the-api-key-1" }

[expect]
come_back_s = 30
route_away_s = 4
"""


def test_a_sut_file_resolves_its_relative_paths_against_its_own_folder(tmp_path):
    folder = tmp_path / "router"
    folder.mkdir()
    (folder / "router.py").write_text("")
    (folder / "router.toml.j2").write_text("")
    sut, expect = load_sut_file(write(folder, "mine.toml", SUT_FILE))
    assert sut["template"] == str(folder / "router.toml.j2")
    assert sut["command"][:5] == [
        "{{ python }}",
        str(folder / "router.py"),
        "--listen=127.0.0.1:{{ port }}",
        "--key-file",
        "missing.txt",
    ]
    assert sut["path"] == "/v1/0123456789abcdef0123456789abcdef"
    assert expect == {"come_back_s": 30, "route_away_s": 4}


def test_a_bad_sut_file_is_one_error_naming_the_file_and_the_field(tmp_path):
    bad = write(tmp_path, "b.toml", SUT_FILE.replace('config_name = "router.toml"', "cfg = 1"))
    with pytest.raises(ConfigError, match=r"--sut .*b.toml: sut.cfg is not a known field"):
        load_sut_file(bad)
    extra = write(tmp_path, "e.toml", SUT_FILE + "\n[providers]\n")
    with pytest.raises(ConfigError, match=r"e.toml: providers is not a known table"):
        load_sut_file(extra)
    no_sut = write(tmp_path, "n.toml", "[expect]\ncome_back_s = 3\n")
    with pytest.raises(ConfigError, match=r"n.toml: needs a \[sut\] table"):
        load_sut_file(no_sut)
    profile = write(tmp_path, "p.toml", SUT_FILE.replace("route_away_s", "routeaway_s"))
    with pytest.raises(ConfigError, match=r"p.toml: expect.routeaway_s is not a known"):
        load_sut_file(profile)


def test_a_sut_file_replaces_a_builtins_sut_wholesale_and_masks_its_path(tmp_path):
    (tmp_path / "router.toml.j2").write_text("")
    sut, expect = load_sut_file(write(tmp_path, "mine.toml", SUT_FILE))
    base, form = load_scenario("http_failover", expect=expect)
    s = apply_overrides(base, sut=sut, expect=expect)
    assert (s.sut.kind, s.sut.options, s.sut.path) == (
        "managed", {"api_key": "the-api-key-1"}, "/v1/0123456789abcdef0123456789abcdef",
    )  # fmt: skip
    assert s.expect == {"come_back_s": 30.0, "route_away_s": 4.0}
    plan = describe_plan(s, form)
    assert "0123456789abcdef" not in plan and "the-api-key-1" not in plan
    assert "path ***" in plan and 'api_key="***"' in plan
    with pytest.raises(ConfigError, match="--sut and --sut-url both replace the SUT"):
        apply_overrides(base, sut=sut, sut_url="http://127.0.0.1:1/")


def test_expect_flags_parse_as_numbers_and_name_the_bad_key():
    assert parse_expect(["come_back_s=30", "overhead_p50_ms=2.5"]) == {
        "come_back_s": 30, "overhead_p50_ms": 2.5,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"--expect comeback=3: expect\.comeback is not a known"):
        parse_expect(["comeback=3"])
    with pytest.raises(ConfigError, match=r"expect\.come_back_s must be a number > 0, got 'soon'"):
        parse_expect(["come_back_s=soon"])
    with pytest.raises(ConfigError, match="--expect 'come_back_s' must read key=value"):
        parse_expect(["come_back_s"])
    sets = ["expect.come_back_s=9", "expect={route_away_s = 2}", "seed=3"]
    assert expect_from_sets(sets) == {"come_back_s": 9, "route_away_s": 2}


def test_expectations_apply_over_the_scenarios_own_and_the_command_line_wins(tmp_path):
    text = TOML.replace("seed = 7", "seed = 7\nexpect = { come_back_s = 5 }")
    path = write(tmp_path, "s.toml", text)
    s, _ = load_scenario(str(path))
    assert s.expect == {"come_back_s": 5.0}
    s, _ = load_scenario(str(path), expect={"come_back_s": 20, "route_away_s": 3})
    assert s.expect == {"come_back_s": 20.0, "route_away_s": 3.0}
    s = apply_overrides(s, sets=["expect.come_back_s=40"], expect={"come_back_s": 50})
    assert s.expect["come_back_s"] == 50.0, "--expect wins over --set and the file"
    assert apply_overrides(s, sets=["expect.recovery_s=7"]).expect["recovery_s"] == 7.0
    with pytest.raises(ConfigError, match=r"expect\.nope is not a known expectation"):
        apply_overrides(s, sets=["expect.nope=1"])


def test_the_plan_shows_every_expectation_and_why_the_load_is_longer_than_declared(tmp_path):
    base, form = load_scenario(str(write(tmp_path, "s.toml", TOML)), expect={"come_back_s": 30})
    plan = describe_plan(base, form)
    # The fault ends at 8 s: 8 + 30 + 2 = 40 s of load instead of 12.
    assert "load 40 s (declared 12 s; extended to the last fault's end 8 s + come_back_s 30" in plan
    assert "expect come_back_s = 30 s (declared)" in plan
    assert "expect route_away_s = 8 s (default)" in plan


def test_battle_run_takes_a_sut_file_and_expect_flags_into_its_printed_plan(tmp_path):
    from click.testing import CliRunner

    from scenarios.cli import cli

    (tmp_path / "router.toml.j2").write_text("")
    sut_file = write(tmp_path, "mine.toml", SUT_FILE)
    args = ["run", "http_failover", "--sut", str(sut_file), "--expect", "come_back_s=10",
            "--set", "expect.recovery_s=12", "--dry-run"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "sut: managed" in result.output and "0123456789abcdef" not in result.output
    assert "expect come_back_s = 10 s (declared)" in result.output, "--expect beat the file's 30"
    assert "expect route_away_s = 4 s (declared)" in result.output, "the file's profile"
    assert "expect recovery_s = 12 s (declared)" in result.output
    bad = CliRunner().invoke(cli, ["run", "http_failover", "--expect", "x=1", "--dry-run"])
    assert bad.exit_code == 2 and "expect.x is not a known expectation" in bad.output


def test_the_documented_sut_file_is_valid_and_expands_one_flag_per_upstream(tmp_path):
    from scenarios.sut import plan_sut, upstreams_for

    doc = (Path(__file__).parents[2] / "docs" / "scenarios.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", doc, re.S) if "# my_router" in b]
    (tmp_path / "my_router.py").write_text("")
    sut, expect = load_sut_file(write(tmp_path, "my_router.toml", block))
    assert expect == {"come_back_s": 30}
    s = apply_overrides(load_scenario("http_failover", expect=expect)[0], sut=sut)
    plan = plan_sut(s.sut, 9000, upstreams_for(s.providers, [7001, 7002, 7003]), tmp_path)
    assert plan.argv[1:4] == (str(tmp_path / "my_router.py"), "--listen", "127.0.0.1:9000")
    assert plan.argv[4:] == tuple(
        f"--upstream={n}=http://127.0.0.1:{p}/"
        for n, p in zip("ABC", (7001, 7002, 7003), strict=True)
    )
    assert plan.url == "http://127.0.0.1:9000/v1/0123456789abcdef0123456789abcdef"
