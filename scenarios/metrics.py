"""The metrics collector: the SUT's Prometheus endpoint scraped into the `metrics` table.

`parse_exposition` reads the text exposition format (version 0.0.4) with
`prometheus_client`'s parser (`# HELP` / `# TYPE` lines, escapes in label values, `NaN`,
`+Inf`, `-Inf`, optional timestamps, which are ignored); it is pure. `MetricsCollector` is
a thread that GETs the endpoint every interval and appends one row per sample:
(t, name, labels as a JSON object with sorted keys, value).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .collectors import Sink

__all__ = ["MetricsCollector", "Sample", "parse_exposition"]

Sample = tuple[str, dict[str, str], float]


def _unsuffixed_counters(text: str) -> set[str]:
    """Counters declared by a `# TYPE` line without the `_total` suffix: the parser
    appends `_total` to each of their samples (OpenMetrics naming); the rows keep the
    names the SUT exposed."""
    names = set()
    if "counter" in text:
        for line in text.splitlines():
            parts = line.split(None, 3)
            if (
                len(parts) == 4
                and parts[:2] == ["#", "TYPE"]
                and parts[3].strip() == "counter"
                and not parts[2].endswith("_total")
            ):
                names.add(parts[2])
    return names


def _families(text: str) -> Iterator[Sample]:
    renamed = _unsuffixed_counters(text)
    for family in text_string_to_metric_families(text):
        cut = family.type == "counter" and family.name in renamed
        for sample in family.samples:
            name = sample.name[:-6] if cut and sample.name.endswith("_total") else sample.name
            yield name, dict(sample.labels), float(sample.value)


def _bad_line(text: str) -> str:
    """Names the first line that does not parse on its own (the parser's errors do not
    say where they are)."""
    for line_no, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            list(_families(raw))
        except ValueError as exc:
            return f"line {line_no}: {str(exc) or 'does not parse'}: {raw!r}"
    return "the exposition does not parse"


def parse_exposition(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition, in order: (name, labels, value).

    Raises:
        ValueError: naming the line that does not parse.
    """
    try:
        return list(_families(text))
    except ValueError:
        raise ValueError(_bad_line(text)) from None


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
            samples = parse_exposition(response.text)
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
