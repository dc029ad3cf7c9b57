"""No key the run knows reaches a file it leaves behind or the process list.

A distinct key is planted in each place a key can be: a remote provider's URL path and
header, the SUT's client path, a SUT option named `api_key` (rendered into its config),
and `--sut-url`'s path. Each run is real and short; while it runs a thread samples every
process's command line (`/proc/*/cmdline` is readable by every user of the host)."""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import httpx
import pytest

from examples.reference_router import render_config
from scenarios import HttpLoad, Scenario, managed, mock, remote
from scenarios.loader import apply_overrides, describe_plan
from scenarios.processes import free_ports, wait_until

# Priority order, A first: the mock behind R serves only `/`, so the key in R's path
# would get 404s; R's key is there to be kept out of the files and command lines.
TEMPLATE = """\
listen = "{{ listen }}"
strategy = "priority"
failover = true
request_timeout_s = 5.0
attempt_timeout_s = 2.0
max_attempts = {{ upstreams | length }}
# the router's own key for its providers: {{ api_key }}
{% for u in upstreams %}
[[upstreams]]
name = "{{ u.name }}"
url = "{{ u.url }}"
{% endfor %}
"""


def key(label: str) -> str:
    # Key-like (letters and digits, 16+ characters) and unique to this test run.
    return f"{label}0{secrets.token_hex(12)}"


def cmdlines() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    out[int(name)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass  # it ended meanwhile
    return out


class Sampler(threading.Thread):
    """Every command line of the host, and the modes of the run's private files, while
    the run goes on."""

    def __init__(self, runs: Path, config_name: str | None) -> None:
        super().__init__(daemon=True)
        self.runs, self.config_name = runs, config_name
        self.seen: set[str] = set()
        self.modes: dict[str, int] = {}
        self.config_text = ""
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.seen.update(cmdlines().values())
            for path in self.runs.glob("*/private/*"):
                self.modes[path.name] = stat.S_IMODE(path.stat().st_mode)
            if self.config_name:
                for path in self.runs.glob(f"*/{self.config_name}"):
                    self.modes[path.name] = stat.S_IMODE(path.stat().st_mode)
                    # As the router read it (it is scrubbed when the run ends).
                    self.config_text = self.config_text or path.read_text()


@pytest.fixture
def node():
    """A mock provider on loopback, the "remote" one (and the external router's)."""
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "providers.mock", "--port", str(port), "--name", "R"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    yield port
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("sut_kind", ["managed", "external"])
def test_no_key_is_in_any_file_of_the_run_nor_in_any_command_line(tmp_path, node, sut_kind):
    keys = {"remote_path": key("rp"), "remote_header": key("rh")}
    providers = [
        mock("A"),
        remote("R", f"http://127.0.0.1:{node}/v3/{keys['remote_path']}",
               headers={"X-Api-Key": keys["remote_header"]}),
    ]  # fmt: skip
    router = None
    if sut_kind == "managed":
        keys |= {"sut_path": key("sp"), "sut_option": key("so")}
        template = tmp_path / "router.toml.j2"
        template.write_text(TEMPLATE)
        sut = managed(["{{ python }}", "-m", "examples.reference_router", "--config={{ config }}"],
                      template=str(template), config_name="router.toml", ready="GET /health",
                      metrics_path="/metrics", path=f"/v1/{keys['sut_path']}",
                      api_key=keys["sut_option"])  # fmt: skip
        scenario = Scenario(name="secrets", providers=providers, sut=sut,
                            workloads=[HttpLoad(rate=10, mix="eth_blockNumber=1")],
                            duration_s=3)  # fmt: skip
    else:
        # A router of the user's, with providers of its own, keyed by the URL's path.
        keys["sut_url"] = key("su")
        (port,) = free_ports(1)
        config = tmp_path / "own-router.toml"
        config.write_text(render_config(
            listen=f"127.0.0.1:{port}", strategy="round_robin", failover=True,
            request_timeout_s=5.0, attempt_timeout_s=2.0, max_attempts=1,
            upstreams=[{"name": "R", "url": f"http://127.0.0.1:{node}/"}],
        ))  # fmt: skip
        router = subprocess.Popen(
            [sys.executable, "-m", "examples.reference_router", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/health"), timeout=20, what="router")
        base = Scenario(
            name="secrets",
            providers=providers,
            workloads=[HttpLoad(rate=10, mix="eth_blockNumber=1")],
            duration_s=3,
        )
        scenario = apply_overrides(base, sut_url=f"http://127.0.0.1:{port}/k/{keys['sut_url']}")
    try:
        runs = tmp_path / "runs"
        sampler = Sampler(runs, "router.toml" if sut_kind == "managed" else None)
        sampler.start()
        printed: list[str] = [describe_plan(scenario, "custom")]
        try:
            result = scenario.run(runs, echo=printed.append)
        finally:
            sampler.done.set()
            sampler.join()
    finally:
        if router is not None:
            os.killpg(router.pid, signal.SIGKILL)
            router.wait()
    run = result.run_dir
    assert result.verdict in ("passed", "failed"), result.summary  # a valid run
    # The children really ran, started through their private argument files (0600).
    started = {line for line in sampler.seen if str(run / "private") in line}
    assert any("proxy-p0.args.json" in line for line in started), sampler.seen
    assert any("loadgen-w0.args.json" in line for line in started)
    assert sampler.modes["proxy-p0.args.json"] == 0o600
    assert not (run / "private").exists(), "removed when the run ended"
    if sut_kind == "managed":
        # The router needs its real key: it is in its config, which only we may read...
        assert keys["sut_option"] in sampler.config_text
        assert sampler.modes["router.toml"] == 0o600
    # The load reached the router at its client path (the router serves any path).
    con = duckdb.connect(str(run / "run.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM requests WHERE outcome = 'ok'").fetchone()[0] >= 20
    con.close()
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "scenario.json" for p in files)
    for name, value in keys.items():
        for line in sampler.seen:
            assert value not in line, f"the {name} key is on a command line: {line[:200]}"
        for text in printed:
            assert value not in text, f"the {name} key was printed"
        for path in files:
            assert value.encode() not in path.read_bytes(), f"the {name} key is in {path}"
