"""report.html in headless Chromium, offline: every chart renders, nothing is logged to
the console as an error, and a screenshot is kept as the test's artifact."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from analysis_rows import fault, make_run, req, stopped, up

from analysis import judge_run, parse_slo, write_reports
from analysis.baseline import make_baseline

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (.ci/run installs it)"
)
# No network at all: the report must not need it, and Chromium must not phone home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",  # any request that tries the network fails
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=15000",
]
# Chromium logs each console message (log, warn, error) as one line on stderr.
CONSOLE = re.compile(r":(?:INFO|WARNING|ERROR):CONSOLE[:(]\d+\)?\] \"(?P<msg>.*)\", source: ")


def chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )


def console_messages(stderr: str) -> list[str]:
    """Every console message of the page: the report logs nothing when all is well, so
    a Vega warning counts as much as an error."""
    return [m["msg"] for m in CONSOLE.finditer(stderr)]


def recorded_run(tmp_path: Path) -> Path:
    reqs, ups = [], []
    for i in range(200):
        down = i % 3 == 0 and 50 <= i < 100
        reqs.append(req(i, i * 50, latency_ms=5 + (i % 7) * 3 + (40 if down else 0)))
        ups.append(
            up(
                i,
                "ABC"[i % 3],
                i * 50 + 1,
                outcome="reset" if down else "ok",
                fault="a-down" if down else None,
            )
        )
        if down:
            ups.append(up(i, "B", i * 50 + 3))
    system = [
        {
            "t": reqs[0]["t_intended"] + k * 1_000_000_000,
            "pid": 7,
            "role": "sut",
            "cpu": 0.2,
            "rss": 50_000_000 + k * 100_000,
        }
        for k in range(10)
    ]
    heads = [
        {
            "worker": 0,
            "connection": "c1",
            "subscription": "s1",
            "kind": "newHeads",
            "block_number": n,
            "block_hash": f"h{n}",
            "parent_hash": f"h{n - 1}",
            "t_received": reqs[0]["t_intended"] + n * 1_000_000_000 + 20_000_000,
        }
        for n in range(1, 10)
    ]
    return make_run(
        tmp_path,
        {
            "ws_notifications": heads,
            "requests": reqs,
            "upstream": ups,
            "fault_events": fault("a-down", "A", 2.5, 5),
            "lifecycle": [stopped(0, 200)],
            "system": system,
        },
        scenario={
            "faults": [{"fault_id": "a-down", "provider": "A"}],
            "genesis_ns": reqs[0]["t_intended"],
            "block_time_ms": 1000,
        },
    )


def test_the_html_report_renders_every_chart_offline_without_console_errors(tmp_path):
    run = recorded_run(tmp_path)
    slos = [parse_slo("success: rate > 0.99"), parse_slo("latency{window:2s}: p(95) < 100")]
    base = make_baseline("base", judge_run(run, []).metrics)
    write_reports(judge_run(run, slos, baseline=base))
    html = run / "report.html"
    text = html.read_text()
    assert "http://" not in text.split("<script>")[0] and "<link" not in text
    expected = int(re.search(r'data-charts-expected="(\d+)"', text)[1])
    # throughput, latency, share, WebSocket delivery, system, distribution
    assert expected == 6

    dom = chromium(tmp_path, html.as_uri(), "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)[0]
    assert f'data-charts-rendered="{expected}"' in body, body
    assert "data-charts-error" not in body
    assert dom.stdout.count('class="marks"') >= expected  # vega's SVG root, one per view
    assert console_messages(dom.stderr) == []
    assert "Baseline comparison" in dom.stdout

    shot = tmp_path / "report.png"
    result = chromium(tmp_path, html.as_uri(), f"--screenshot={shot}", "--window-size=1200,3000")
    assert result.returncode == 0 and shot.stat().st_size > 20_000
    print(f"report screenshot: {shot}")


def test_the_check_sees_a_chart_that_fails(tmp_path):
    """The same check against a report whose chart spec is broken: it must notice."""
    run = recorded_run(tmp_path)
    write_reports(judge_run(run, []))
    html = run / "report.html"
    text = html.read_text()
    start = text.index("const specs = ") + len("const specs = ")
    end = text.index(";\n", start)
    specs = json.loads(text[start:end])
    name = next(iter(specs))
    specs[name] = {
        "mark": {"type": "line"},
        "data": {"url": "https://example.invalid/x.csv"},
        "encoding": {"x": {"field": "a", "type": "quantitative"}},
    }
    html.write_text(text[:start] + json.dumps(specs) + text[end:])
    dom = chromium(tmp_path, html.as_uri(), "--dump-dom")
    messages = console_messages(dom.stderr)
    assert any("Loading failed https://example.invalid/x.csv" in m for m in messages), messages
