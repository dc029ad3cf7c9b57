"""Providers: the mock fleet (one deterministic chain shared by all, HTTP + WS), anvil
nodes as real providers, and remote provider definitions with their secrets redacted.

Modules: ``chain`` (the chain, pure), ``behaviour`` (native behaviours, pure),
``jsonrpc`` (method dispatch and subscriptions, pure), ``websocket`` (RFC 6455 on the
HTTP port, pure), ``server`` (HTTP/1.1 parser and the asyncio driver), ``fleet`` (a
fleet's plan), ``remote`` (definitions, redaction), ``errors`` (real error shapes);
processes: ``python -m providers.mock`` and ``python -m providers.anvil`` (not imported
here, so that ``-m`` runs them cleanly).
"""

from providers.behaviour import Behaviour as Behaviour
from providers.behaviour import parse_behaviour as parse_behaviour
from providers.chain import Chain as Chain
from providers.fleet import FleetPlan as FleetPlan
from providers.fleet import plan_fleet as plan_fleet
from providers.jsonrpc import MockNode as MockNode
from providers.remote import ProviderDef as ProviderDef
from providers.remote import Redactor as Redactor
from providers.remote import parse_provider as parse_provider
from providers.remote import redact_url as redact_url

__all__ = [
    "Behaviour",
    "Chain",
    "FleetPlan",
    "MockNode",
    "ProviderDef",
    "Redactor",
    "parse_behaviour",
    "parse_provider",
    "plan_fleet",
    "redact_url",
]
