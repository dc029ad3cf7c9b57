"""The reference router with a memory leak on purpose, for the long_running_stability
test: every forwarded call keeps LEAK_BYTES alive until the process ends, so the
router's resident memory really grows with the load and the scenario's memory-growth
SLO has a real leak to catch (no number is faked).

    python tests/e2e/leaky_router.py --config FILE.toml   (as python -m examples.reference_router)
"""

from __future__ import annotations

import sys
from typing import Any

from examples.reference_router import __main__ as router_main
from examples.reference_router._router import Reply, Router

# 64 KB per call: at 30 calls a second about 115 MB a minute, far above any noise.
LEAK_BYTES = 64 * 1024

_kept: list[bytearray] = []
_forward = Router.forward


async def _leaky_forward(self: Router, body: bytes, **kwargs: Any) -> Reply:
    # Filled with a non-zero byte so that every page is written, hence resident.
    _kept.append(bytearray(b"\x01") * LEAK_BYTES)
    return await _forward(self, body, **kwargs)


Router.forward = _leaky_forward  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(router_main.main())
