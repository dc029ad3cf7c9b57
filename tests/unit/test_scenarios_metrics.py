"""The Prometheus text parser and the metrics collector's rows."""

from __future__ import annotations

import json
import math
import re
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
        ('x{a="1" 2', "could not convert"),
        ("x{a=1} 2", "Invalid labels"),
        ("x one", "could not convert"),
        ("x 1_000", "Invalid value"),
        ('{a="1"} 2', "does not parse"),
    ],
)
def test_a_malformed_line_is_an_error_naming_it(line, message):
    with pytest.raises(ValueError, match=f"line 2: {message}.*" + re.escape(repr(line))):
        parse_exposition("ok 1\n" + line)


def test_the_parser_takes_blanks_between_a_name_and_its_labels_and_exemplars():
    text = (
        '# TYPE m counter\nm {a="1"} 1\nm\t{a="2"}\t2\n'
        "# TYPE c_total counter\nc_total 4\n"
        'h_bucket{le="1"} 3 # {trace_id="x"} 0.5\n'
    )
    # Counters keep the names they were exposed with, with or without `_total`.
    assert parse_exposition(text) == [
        ("m", {"a": "1"}, 1.0),
        ("m", {"a": "2"}, 2.0),
        ("c_total", {}, 4.0),
        ("h_bucket", {"le": "1"}, 3.0),
    ]


def test_a_histogram_keeps_its_bucket_sum_and_count_samples_in_order():
    text = (
        "# TYPE lat histogram\n"
        'lat_bucket{le="0.1"} 2\nlat_bucket{le="+Inf"} 5\nlat_sum 1.5\nlat_count 5\n'
    )
    assert parse_exposition(text) == [
        ("lat_bucket", {"le": "0.1"}, 2.0),
        ("lat_bucket", {"le": "+Inf"}, 5.0),
        ("lat_sum", {}, 1.5),
        ("lat_count", {}, 5.0),
    ]


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
