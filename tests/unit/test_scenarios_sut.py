"""The SUT template contract (names other engineers' templates rely on) and its plan."""

from __future__ import annotations

import sys

import pytest

from scenarios import ConfigError, managed, mock, reference_router, remote
from scenarios.sut import (
    plan_sut,
    proxy_upstream,
    proxy_ws_upstream,
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
