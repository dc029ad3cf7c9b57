"""The SUT template contract (names other engineers' templates rely on) and its plan."""

from __future__ import annotations

import sys

import pytest

from scenarios import ConfigError, Sut, external, managed, mock, reference_router, remote
from scenarios.sut import (
    command_context,
    plan_sut,
    proxy_upstream,
    proxy_ws_upstream,
    render_command,
    render_template,
    template_context,
    upstreams_for,
)

KEY = "0123456789abcdef0123456789abcdef"


def test_the_template_sees_exactly_the_contracts_names_plus_the_options(tmp_path):
    ups = upstreams_for([mock("A"), mock("B")], [7001, 7002])
    ctx = template_context(8000, ups, tmp_path, {"failover": True})
    assert set(ctx) == {"listen", "listen_host", "listen_port", "upstreams", "run_dir", "failover"}
    assert (ctx["listen"], ctx["listen_host"], ctx["listen_port"]) == (
        "127.0.0.1:8000",
        "127.0.0.1",
        8000,
    )
    assert ctx["run_dir"] == str(tmp_path.resolve())
    assert ctx["upstreams"][1] == {
        "name": "B", "url": "http://127.0.0.1:7002/", "ws_url": "ws://127.0.0.1:7002/",
        "host": "127.0.0.1", "port": 7002,
    }  # fmt: skip


def test_a_remote_providers_path_and_query_go_to_the_proxy_and_never_to_the_sut():
    p = remote("R", f"https://eth.example.io/v3/{KEY}?x=1", ws_url=f"wss://eth.example.io/ws/{KEY}")
    (up,) = upstreams_for([p], [7005])
    assert up["url"] == "http://127.0.0.1:7005/"
    assert up["ws_url"] == "ws://127.0.0.1:7005/"
    assert proxy_upstream(p, None) == f"https://eth.example.io/v3/{KEY}?x=1"
    assert proxy_ws_upstream(p) == f"wss://eth.example.io/ws/{KEY}"
    assert proxy_ws_upstream(remote("S", "https://user:pw@x.example.io/k")) is None
    assert proxy_upstream(remote("S", "https://user:pw@x.example.io/k"), None) == (
        "https://x.example.io/k"
    )
    other = remote("R", "https://a.example.io/", ws_url="wss://b.example.io/")
    with pytest.raises(ConfigError, match=r"providers\[0\].ws_url must be on the host"):
        upstreams_for([other], [7005])


def test_a_managed_command_gets_its_placeholders_and_rendered_config(tmp_path):
    template = tmp_path / "t.conf.j2"
    template.write_text(
        "listen {{ listen_port }};{% for u in upstreams %} {{ u.name }}={{ u.host }}:{{ u.port }}"
        "{% endfor %} mode={{ mode }}\n"
    )
    sut = managed(["{python}", "serve", "-c", "{config}", "--port={port}", "{run_dir}"],
                  template=str(template), config_name="x.conf", mode="fast")  # fmt: skip
    sut.check()
    plan = plan_sut(sut, 9000, upstreams_for([mock("A")], [7001]), tmp_path)
    assert plan.argv == (sys.executable, "serve", "-c", str(tmp_path / "x.conf"),
                         "--port=9000", str(tmp_path.resolve()))  # fmt: skip
    assert plan.config_text == "listen 9000; A=127.0.0.1:7001 mode=fast\n"
    assert (plan.url, plan.ws_url, plan.metrics_url) == ("http://127.0.0.1:9000/", None, None)


def test_a_template_needing_an_unknown_variable_is_an_error_naming_it(tmp_path):
    template = tmp_path / "t.j2"
    template.write_text("{{ listen }} {{ nonsense }}")
    with pytest.raises(ConfigError, match="'nonsense' is undefined"):
        render_template(template, {"listen": "x"})
    with pytest.raises(ConfigError, match="cannot read"):
        render_template(tmp_path / "missing.j2", {})


def test_the_reference_router_is_rendered_with_every_option(tmp_path):
    sut = reference_router(failover=False, strategy="priority", circuit_breaker=False)
    plan = plan_sut(sut, 9000, upstreams_for([mock("A"), mock("B")], [7001, 7002]), tmp_path)
    assert plan.argv[:2] == ("-m", "examples.reference_router") and plan.python_module
    assert 'listen = "127.0.0.1:9000"' in plan.config_text
    assert "failover = false" in plan.config_text and 'strategy = "priority"' in plan.config_text
    assert "[circuit_breaker]\nenabled = false" in plan.config_text
    assert plan.metrics_url == "http://127.0.0.1:9000/metrics"


def test_command_items_are_jinja_templates_and_a_list_expands_one_item_per_element(tmp_path):
    # A router configured by flags alone: no script, no template.
    sut = managed(
        ["{{ python }}", "r.py", "--listen", "{{ listen_host }}:{{ port }}",
         {"each": "upstreams", "as": "u", "arg": "--upstream={{ u.name }}={{ u.url }}"},
         {"each": "upstreams", "args": ["--ws", "{{ item.ws_url }}"]},
         "--mode={{ mode }}", "--old={port}", "--dir={{ run_dir }}"],
        mode="fast",
    )  # fmt: skip
    sut.check()
    plan = plan_sut(sut, 9000, upstreams_for([mock("A"), mock("B")], [7001, 7002]), tmp_path)
    assert plan.argv == (
        sys.executable, "r.py", "--listen", "127.0.0.1:9000",
        "--upstream=A=http://127.0.0.1:7001/", "--upstream=B=http://127.0.0.1:7002/",
        "--ws", "ws://127.0.0.1:7001/", "--ws", "ws://127.0.0.1:7002/",
        "--mode=fast", "--old=9000", f"--dir={tmp_path.resolve()}",
    )  # fmt: skip


def test_a_command_item_needing_an_unknown_variable_is_an_error_naming_the_item(tmp_path):
    context = command_context(
        {"upstreams": [], "run_dir": str(tmp_path), "mode": "x"}, 9000, tmp_path / "c"
    )
    assert render_command(["--config={{ config }}"], context) == [f"--config={tmp_path / 'c'}"]
    with pytest.raises(ConfigError, match=r"sut.command\[1\]: 'nonsense' is undefined"):
        render_command(["r", "{{ nonsense }}"], context)
    with pytest.raises(ConfigError, match=r"sut.command\[0\].each must name a list variable"):
        render_command([{"each": "mode", "arg": "{{ item }}"}], context)


def test_the_client_path_replaces_slash_for_the_load_but_not_for_the_probe(tmp_path):
    ups = upstreams_for([mock("A")], [7001])
    plan = plan_sut(Sut(path="/v1/KEY"), 9000, ups, tmp_path)
    assert (plan.url, plan.ws_url, plan.base_url) == (
        "http://127.0.0.1:9000/v1/KEY", "ws://127.0.0.1:9000/v1/KEY", "http://127.0.0.1:9000/",
    )  # fmt: skip
    assert plan.metrics_url == "http://127.0.0.1:9000/metrics"
    elsewhere = plan_sut(Sut(path="/v1/KEY", ws_path="/ws"), 9000, ups, tmp_path)
    assert elsewhere.ws_url == "ws://127.0.0.1:9000/ws", "an explicit ws_path is kept"
    ext = plan_sut(external("http://127.0.0.1:8545/rpc", path="/v1/KEY"), None, ups, tmp_path)
    assert (ext.url, ext.ws_url, ext.base_url) == (
        "http://127.0.0.1:8545/v1/KEY", "ws://127.0.0.1:8545/v1/KEY", "http://127.0.0.1:8545/",
    )  # fmt: skip
