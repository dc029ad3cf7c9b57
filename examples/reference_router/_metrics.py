"""Prometheus text exposition (format 0.0.4), written by hand: counters the router
increments on its hot path (a dict update), gauges read when ``/metrics`` is scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Registry"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

type Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(name: str, labelnames: Labels, labels: Labels, value: float) -> str:
    if labelnames:
        pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(labelnames, labels, strict=True))
        name = f"{name}{{{pairs}}}"
    text = repr(float(value)) if value != int(value) else str(int(value))
    return f"{name} {text}\n"


class Counter:
    """A counter family: ``inc(labels...)`` adds to the series with those label values."""

    __slots__ = ("help", "labelnames", "name", "series")

    def __init__(self, name: str, help: str, labelnames: Labels = ()) -> None:
        self.name, self.help, self.labelnames = name, help, labelnames
        self.series: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1) -> None:
        self.series[labels] = self.series.get(labels, 0) + amount

    def value(self, *labels: str) -> float:
        return self.series.get(labels, 0)

    def render(self) -> str:
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} counter\n"
        return head + "".join(
            _line(self.name, self.labelnames, labels, v) for labels, v in self.series.items()
        )


class Gauge:
    """A family whose samples ``read()`` yields at scrape time: a gauge, or a counter kept
    elsewhere (``kind="counter"``)."""

    __slots__ = ("help", "kind", "labelnames", "name", "read")

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Labels,
        read: Callable[[], Iterable[tuple[Labels, float | None]]],
        kind: str = "gauge",
    ) -> None:
        self.name, self.help, self.labelnames, self.read = name, help, labelnames, read
        self.kind = kind

    def render(self) -> str:
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(
            _line(self.name, self.labelnames, labels, v)
            for labels, v in self.read()
            if v is not None
        )


class Registry:
    """The families to expose, in registration order."""

    def __init__(self) -> None:
        self.families: list[Counter | Gauge] = []

    def counter(self, name: str, help: str, labelnames: Labels = ()) -> Counter:
        family = Counter(name, help, labelnames)
        self.families.append(family)
        return family

    def gauge(
        self,
        name: str,
        help: str,
        labelnames: Labels,
        read: Callable[[], Iterable[tuple[Labels, float | None]]],
        kind: str = "gauge",
    ) -> Gauge:
        family = Gauge(name, help, labelnames, read, kind)
        self.families.append(family)
        return family

    def render(self) -> bytes:
        return "".join(f.render() for f in self.families).encode()
