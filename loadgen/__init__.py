"""The trio load generator: arrival models, request mixes, honest latency, validated
answers, WebSocket subscriptions."""

from .mix import BatchSpec, RequestMix, parse_batch, parse_mix
from .schedule import (
    Bursts,
    ClosedLoop,
    ConstantRate,
    LinearRamp,
    Poisson,
    Schedule,
    Share,
    Steps,
    parse_arrival,
)
from .transport import Http1Transport, HttpxTransport, Transport, open_transport
from .validate import Judgement, Truth, judge, judge_batch
from .worker import Clock, Summary, WorkerConfig, run_worker

__all__ = (
    "BatchSpec",
    "Bursts",
    "Clock",
    "ClosedLoop",
    "ConstantRate",
    "Http1Transport",
    "HttpxTransport",
    "Judgement",
    "LinearRamp",
    "Poisson",
    "RequestMix",
    "Schedule",
    "Share",
    "Steps",
    "Summary",
    "Transport",
    "Truth",
    "WorkerConfig",
    "judge",
    "judge_batch",
    "open_transport",
    "parse_arrival",
    "parse_batch",
    "parse_mix",
    "run_worker",
)
