"""A fleet of providers behind one chaos-proxy process: the plan, without I/O.

:func:`plan_fleet` decides names, ports, every command line and the URLs a router's
config needs; the ``battle fleet up`` command (``scenarios/cli.py``) starts the
processes of a plan, waits for them and stops them. Commands are module invocations
(``python -m providers.mock``, ``python -m providers.anvil``, ``python -m chaosproxy``)
so that ``providers`` never imports the chaos proxy.

Every provider of a fleet shares one chain: mock providers get one ``--seed`` and
``--genesis-ns``; anvil nodes one ``--timestamp`` (whole-second block times, see
:mod:`providers.anvil`).
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from providers.behaviour import parse_behaviour
from providers.chain import DEFAULT_CHAIN_ID

__all__ = ["FLEET_KINDS", "FleetMember", "FleetPlan", "plan_fleet", "provider_names"]

FLEET_KINDS = ("mock", "anvil")
MAX_FLEET = 26 * 27  # names A..Z, then AA..ZZ


def provider_names(count: int) -> list[str]:
    """A, B, …, Z, AA, AB, …: short names that read well in reports."""
    letters = string.ascii_uppercase
    names = list(letters) + [a + b for a in letters for b in letters]
    return names[:count]


@dataclass(frozen=True)
class FleetMember:
    name: str
    kind: str
    provider_port: int
    listen_port: int
    argv: tuple[str, ...]  # after the Python executable

    @property
    def provider_url(self) -> str:
        return f"http://127.0.0.1:{self.provider_port}"

    @property
    def http_url(self) -> str:
        """The chaos proxy's listener for this provider: what a router should use."""
        return f"http://127.0.0.1:{self.listen_port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.listen_port}/"


@dataclass(frozen=True)
class FleetPlan:
    members: tuple[FleetMember, ...]
    control_port: int
    proxy_argv: tuple[str, ...]  # after the Python executable
    chain: Mapping[str, Any]

    def summary_lines(self) -> list[str]:
        """What ``battle fleet up`` prints: one line per provider, then the control API."""
        width = max(len(m.name) for m in self.members)
        lines = [
            f"{m.name:<{width}}  http {m.http_url}  ws {m.ws_url}  ({m.kind} at {m.provider_url})"
            for m in self.members
        ]
        lines.append(f"chaos proxy control API: http://127.0.0.1:{self.control_port}/faults")
        return lines

    def router_upstreams(self) -> list[dict[str, str]]:
        """``[[upstreams]]`` entries for a router config (the reference router's form)."""
        return [{"name": m.name, "url": m.http_url, "ws_url": m.ws_url} for m in self.members]


def plan_fleet(
    count: int,
    kind: str,
    ports: Sequence[int],
    *,
    run_dir: str,
    seed: int = 1,
    genesis_ns: int,
    block_time_ms: int = 1000,
    chain_id: int = DEFAULT_CHAIN_ID,
    behaviours: Mapping[str, Any] | None = None,
    faults_file: str | None = None,
) -> FleetPlan:
    """The plan of a fleet of ``count`` providers of ``kind``.

    Args:
        ports: ``2 * count + 1`` free loopback ports: providers, listeners, control API.
        run_dir: where the chaos proxy writes its shards.
        genesis_ns: block 0's time; anvil gets it in whole seconds.
        behaviours: mock only: provider name -> behaviour spec (JSON form).
        faults_file: a chaos-proxy fault file, if any.

    Raises:
        ValueError: naming the bad argument.
    """
    if kind not in FLEET_KINDS:
        raise ValueError(f"kind must be one of {', '.join(FLEET_KINDS)}, got {kind!r}")
    if not 1 <= count <= MAX_FLEET:
        raise ValueError(f"count must be in 1..{MAX_FLEET}, got {count}")
    if len(ports) != 2 * count + 1 or len(set(ports)) != len(ports):
        raise ValueError(f"ports must be {2 * count + 1} distinct ports, got {len(set(ports))}")
    if kind == "anvil" and block_time_ms % 1000:
        raise ValueError(
            f"block_time_ms must be a multiple of 1000 for anvil (one chain), got {block_time_ms}"
        )
    names = provider_names(count)
    behaviours = dict(behaviours or {})
    for name, spec in behaviours.items():
        if name not in names:
            raise ValueError(f"behaviour for {name!r}: no such provider (have {', '.join(names)})")
        if kind != "mock":
            raise ValueError("behaviours are for mock providers only")
        parse_behaviour(spec, f"behaviour[{name}]")
    members = []
    for i, name in enumerate(names):
        pport, lport = ports[i], ports[count + i]
        if kind == "mock":
            argv = [
                "-m", "providers.mock", "--name", name, "--port", str(pport),
                "--seed", str(seed), "--genesis-ns", str(genesis_ns),
                "--block-time-ms", str(block_time_ms), "--chain-id", str(chain_id),
            ]  # fmt: skip
            if name in behaviours:
                argv += ["--behaviour", json.dumps(behaviours[name], separators=(",", ":"))]
        else:
            argv = [
                "-m", "providers.anvil", "--name", name, "--port", str(pport),
                "--timestamp", str(genesis_ns // 1_000_000_000),
                "--block-time-ms", str(block_time_ms), "--chain-id", str(chain_id),
            ]  # fmt: skip
        members.append(FleetMember(name, kind, pport, lport, tuple(argv)))
    control = ports[2 * count]
    proxy = ["-m", "chaosproxy", "--proxy-id", "fleet", "--run-dir", run_dir,
             "--control-port", str(control)]  # fmt: skip
    proxy += [f"--listen={m.name}={m.listen_port}={m.provider_url}" for m in members]
    if faults_file:
        proxy += ["--faults", faults_file]
    chain = {"seed": seed, "genesis_ns": genesis_ns, "block_time_ms": block_time_ms,
             "chain_id": chain_id}  # fmt: skip
    return FleetPlan(tuple(members), control, tuple(proxy), chain)
