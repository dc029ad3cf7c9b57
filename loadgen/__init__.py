"""The trio load generator: open-model arrivals, tagged JSON-RPC calls, honest latency."""

from .mix import RequestMix, parse_mix
from .schedule import ConstantRate
from .transport import HttpxTransport, Transport
from .validate import Judgement, judge
from .worker import Clock, Summary, WorkerConfig, run_worker

__all__ = (
    "Clock",
    "ConstantRate",
    "HttpxTransport",
    "Judgement",
    "RequestMix",
    "Summary",
    "Transport",
    "WorkerConfig",
    "judge",
    "parse_mix",
    "run_worker",
)
