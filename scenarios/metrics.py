"""The metrics collector: the SUT's Prometheus endpoint scraped into the `metrics` table.

`parse_exposition` reads the text exposition format (version 0.0.4: `# HELP` and
`# TYPE` lines, `name{label="value",...} value [timestamp]`, label values with `\\`,
`\"` and `\n` escapes, `NaN`, `+Inf`, `-Inf`); it is pure. `MetricsCollector` is a
thread that GETs the endpoint every interval and appends one row per sample:
(t, name, labels as a JSON object with sorted keys, value).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator

import httpx

from .collectors import Sink

__all__ = ["MetricsCollector", "Sample", "parse_exposition"]

Sample = tuple[str, dict[str, str], float]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,?)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_SPECIAL = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}


def _unescape(text: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], text)


def _value(text: str, line_no: int) -> float:
    special = _SPECIAL.get(text.lower())
    if special is not None:
        return special
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"line {line_no}: value must be a number, got {text!r}") from None


def parse_exposition(text: str) -> Iterator[Sample]:
    """The samples of a Prometheus text exposition, in order.

    Raises:
        ValueError: naming the line that does not parse.
    """
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name_match = _NAME.match(line)
        if not name_match:
            raise ValueError(f"line {line_no}: expected a metric name, got {raw!r}")
        name, pos = name_match.group(0), name_match.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            pos += 1
            while True:
                if line[pos:].lstrip().startswith("}"):
                    pos = line.index("}", pos) + 1
                    break
                label = _LABEL.match(line, pos)
                if not label:
                    raise ValueError(f"line {line_no}: bad label set in {raw!r}")
                labels[label.group(1)] = _unescape(label.group(2))
                pos = label.end()
                if not label.group(3):
                    rest = line[pos:].lstrip()
                    if not rest.startswith("}"):
                        raise ValueError(f"line {line_no}: expected '}}' in {raw!r}")
                    pos = len(line) - len(rest) + 1
                    break
        fields = line[pos:].split()
        if not 1 <= len(fields) <= 2:
            raise ValueError(f"line {line_no}: expected `value [timestamp]`, got {raw!r}")
        yield name, labels, _value(fields[0], line_no)


class MetricsCollector:
    """Scrapes `url` every `interval` seconds until `stop()`, appending rows to `sink`.

    A failed scrape (refused, timeout, not 200, unparsable) is counted, not raised: the
    SUT being briefly unable to answer is something the run observes, not a runner
    error. `scrapes` and `failures` say how it went.
    """

    def __init__(self, url: str, sink: Sink, *, interval: float = 1.0) -> None:
        self._url = url
        self._sink = sink
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-collector", daemon=True)
        self._client = httpx.Client(timeout=min(interval, 2.0))
        self.scrapes = 0
        self.failures = 0
        self.last_error = ""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._client.close()

    def scrape(self) -> None:
        """Takes one scrape."""
        t = time.time_ns()
        try:
            response = self._client.get(self._url)
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code}")
            samples = list(parse_exposition(response.text))
        except (httpx.HTTPError, ValueError) as exc:
            self.failures += 1
            self.last_error = str(exc)
            return
        self.scrapes += 1
        for name, labels, value in samples:
            self._sink.append((t, name, json.dumps(labels, sort_keys=True), value))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.scrape()
