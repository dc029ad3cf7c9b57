"""Request mixes: which JSON-RPC call comes next. Pure, seeded, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["METHODS", "Call", "RequestMix", "parse_mix"]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: list


def _block_number(rng: random.Random) -> list:
    return []


def _chain_id(rng: random.Random) -> list:
    return []


def _get_balance(rng: random.Random) -> list:
    # Balances across an address space of 10,000 accounts, read at the tip.
    return [f"0x{rng.randrange(10_000):040x}", "latest"]


def _get_block_by_number(rng: random.Random) -> list:
    return ["latest", False]


# Methods the mix knows how to generate parameters for.
METHODS: dict[str, Callable[[random.Random], list]] = {
    "eth_blockNumber": _block_number,
    "eth_chainId": _chain_id,
    "eth_getBalance": _get_balance,
    "eth_getBlockByNumber": _get_block_by_number,
}


class RequestMix:
    """Weighted choice of methods with their parameter generators."""

    def __init__(self, weights: Mapping[str, float], *, seed: int = 0) -> None:
        if not weights:
            raise ValueError("mix must name at least one method")
        for method, weight in weights.items():
            if method not in METHODS:
                raise ValueError(f"mix method must be one of {sorted(METHODS)}, got {method!r}")
            if not weight > 0:
                raise ValueError(f"mix weight of {method} must be > 0, got {weight}")
        self._methods = list(weights)
        self._weights = [float(weights[m]) for m in self._methods]
        self._rng = random.Random(seed)

    def next(self) -> Call:
        method = self._rng.choices(self._methods, self._weights)[0]
        return Call(method, METHODS[method](self._rng))


def parse_mix(text: str) -> dict[str, float]:
    """Parses `eth_blockNumber=1,eth_getBalance=2` into weights."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        method, sep, weight = part.partition("=")
        try:
            weights[method.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"mix weight of {method.strip()} must be a number, got {weight!r}"
            ) from None
    RequestMix(weights)  # validates
    return weights
