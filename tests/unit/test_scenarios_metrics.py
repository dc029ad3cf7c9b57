"""The Prometheus text parser and the metrics collector's rows."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from examples.reference_router._metrics import Registry
from scenarios.metrics import MetricsCollector, parse_exposition

TEXT = r"""# HELP router_requests_total Client requests.
# TYPE router_requests_total counter
router_requests_total{outcome="ok"} 1027
router_requests_total{outcome="error" , } 3 1700000000000
up 1
odd{path="C:\\dir",quote="say \"hi\"",nl="a\nb",brace="}{"} -2.5e-3
nan_metric NaN
inf_metric{le="+Inf"} +Inf
"""


def test_the_parser_reads_names_labels_escapes_and_special_values():
    samples = list(parse_exposition(TEXT))
    assert samples[:3] == [
        ("router_requests_total", {"outcome": "ok"}, 1027.0),
        ("router_requests_total", {"outcome": "error"}, 3.0),
        ("up", {}, 1.0),
    ]
    _, labels, value = samples[3]
    assert labels == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "a\nb", "brace": "}{"}
    assert value == -2.5e-3
    assert math.isnan(samples[4][2]) and samples[5] == ("inf_metric", {"le": "+Inf"}, math.inf)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('x{a="1" 2', "bad label set|expected '}'"),
        ("x{a=1} 2", "bad label set"),
        ("x one", "value must be a number"),
        ("x 1 2 3", "expected `value"),
        ('{a="1"} 2', "expected a metric name"),
    ],
)
def test_a_malformed_line_is_an_error_naming_it(line, message):
    with pytest.raises(ValueError, match=f"line 2: ({message})"):
        list(parse_exposition("ok 1\n" + line))


def test_the_parser_reads_the_reference_routers_own_exposition():
    registry = Registry()
    requests = registry.counter("router_requests_total", "Client requests.", ("outcome",))
    requests.inc("ok", amount=3)
    requests.inc('odd "one"\\')
    registry.gauge("router_breaker_state", "0 closed.", ("upstream",), lambda: [(("A",), 2.0)])
    samples = list(parse_exposition(registry.render().decode()))
    assert samples == [
        ("router_requests_total", {"outcome": "ok"}, 3.0),
        ("router_requests_total", {"outcome": 'odd "one"\\'}, 1.0),
        ("router_breaker_state", {"upstream": "A"}, 2.0),
    ]


class _Handler(BaseHTTPRequestHandler):
    body = b'router_breaker_state{upstream="A"} 2\nrouter_requests_total{outcome="ok"} 5\n'
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_collector_records_every_sample_of_a_scrape_and_counts_failures():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rows: list[tuple] = []
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        collector = MetricsCollector(url, rows, interval=0.05)
        collector.scrape()
        assert [(r[1], json.loads(r[2]), r[3]) for r in rows] == [
            ("router_breaker_state", {"upstream": "A"}, 2.0),
            ("router_requests_total", {"outcome": "ok"}, 5.0),
        ]
        assert rows[0][0] == rows[1][0] > 0 and collector.scrapes == 1
        _Handler.status = 404
        collector.scrape()
        assert (collector.failures, len(rows)) == (1, 2) and "404" in collector.last_error
        collector.stop()
    finally:
        _Handler.status = 200
        server.shutdown()
        server.server_close()
    dead = MetricsCollector(url, rows, interval=0.05)
    dead.scrape()
    dead.stop()
    assert dead.failures == 1 and dead.scrapes == 0
