"""Mock Ethereum providers: one deterministic chain shared by every provider of a run.

``chain`` (the chain, pure), ``jsonrpc`` (method dispatch, pure), ``server`` (HTTP/1.1
over asyncio) and ``python -m providers.mock`` (one provider process).
"""

from providers.chain import Chain as Chain
from providers.jsonrpc import MockNode as MockNode

__all__ = ["Chain", "MockNode"]
