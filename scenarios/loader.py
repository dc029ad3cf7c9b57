"""Scenarios from files and names, CLI overrides, and the resolved plan as text.

`load_scenario(target)` takes a `.py` file (defining `scenario`, or `build()` /
`build(full)`), a `.toml` file (the `Scenario.to_dict()` form; an optional `[full]`
table is merged over the rest for the full form), or a built-in name.
`apply_overrides` edits the dict form (`--rate`, `--duration`, `--seed`, `--sut-url`,
`--providers`, `--set a.b.c=v`) and validates the result again.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .api import Scenario
from .errors import ConfigError

__all__ = ["apply_overrides", "describe_plan", "load_scenario", "parse_set", "set_path"]


def load_scenario(target: str, *, full: bool = False) -> tuple[Scenario, str]:
    """The scenario `target` names, and its form (`fast`, `full`, or `file`).

    Raises:
        ConfigError: the file is missing or wrong, or no built-in has that name.
    """
    path = Path(target)
    if path.suffix == ".py":
        return _from_python(path, full), "full" if full else "fast"
    if path.suffix == ".toml":
        return _from_toml(path, full), "full" if full else "fast"
    if path.exists() or "/" in target:
        raise ConfigError(f"scenario {target!r} must be a .py or .toml file or a built-in name")
    from .builtin import get

    return get(target).scenario(full=full), "full" if full else "fast"


def _from_python(path: Path, full: bool) -> Scenario:
    if not path.is_file():
        raise ConfigError(f"scenario file {path}: no such file")
    name = f"battle_scenario_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"scenario file {path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except Exception as exc:  # the user's code: report it in one line, whatever it is
        raise ConfigError(f"scenario file {path}: {type(exc).__name__}: {exc}") from None
    build = getattr(module, "build", None)
    if callable(build):
        takes_full = "full" in inspect.signature(build).parameters
        try:
            scenario = build(full=full) if takes_full else build()
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    else:
        scenario = getattr(module, "scenario", None)
        if full:
            raise ConfigError(f"{path}: --full needs a build(full) function in the file")
    if not isinstance(scenario, Scenario):
        raise ConfigError(
            f"scenario file {path} must define `scenario` (a Scenario) or `build()` returning one"
        )
    return scenario


def _from_toml(path: Path, full: bool) -> Scenario:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"scenario file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario file {path}: invalid TOML: {exc}") from None
    overlay = data.pop("full", None)
    if overlay is not None and not isinstance(overlay, dict):
        raise ConfigError(f"{path}: full must be a table")
    if full:
        if overlay is None:
            raise ConfigError(f"{path}: --full needs a [full] table in the file")
        data = _merge(data, overlay)
    try:
        return Scenario.from_dict(data, base_dir=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------


def parse_set(item: str) -> tuple[list[str], Any]:
    """`a.b[0].c=VALUE` -> (["a", "b", "0", "c"], value); the value is read as a TOML
    literal (`5`, `false`, `"x"`, `[1, 2]`, `{ms = 5}`), else taken as a plain string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r} must read key=value")
    parts = [p for p in re.split(r"\.|\[(\d+)\]", key) if p]
    if not parts or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in parts):
        raise ConfigError(
            f"--set {item!r}: the key must be a dotted path like sut.options.failover"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def set_path(data: dict[str, Any], parts: Sequence[str], value: Any, where: str) -> None:
    """Sets `data[parts[0]][parts[1]]... = value`; tables on the way are created, list
    items must exist."""
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        at = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: {at} is not an item ({len(node)} in the list)")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{where}: {'.'.join(parts[:i])} is a value, not a table or list")


def apply_overrides(
    scenario: Scenario,
    *,
    rate: float | None = None,
    duration: float | None = None,
    seed: int | None = None,
    sut_url: str | None = None,
    providers: str | None = None,
    sets: Sequence[str] = (),
) -> Scenario:
    """`scenario` with the CLI's overrides applied, validated again.

    `--rate` sets every HTTP workload's constant rate (replacing an arrival model);
    `--providers mock|anvil` switches the kind of every non-remote provider,
    `--providers FILE.toml|FILE.json` replaces the list with the file's `providers`;
    `--sut-url URL` makes the SUT external.

    Raises:
        ConfigError: naming the flag or the field that is wrong.
    """
    data = copy.deepcopy(scenario.to_dict())
    if rate is not None:
        http = [w for w in data["workloads"] if w.get("kind", "http") == "http"]
        if not http:
            raise ConfigError("--rate: the scenario has no HTTP workload")
        for w in http:
            w.pop("arrival", None)
            w["rate"] = rate
    if duration is not None:
        data["duration_s"] = duration
    if seed is not None:
        data["seed"] = seed
    if sut_url is not None:
        data["sut"] = {"kind": "external", "url": sut_url}
    if providers is not None:
        data["providers"] = _providers_override(providers, data["providers"])
    for item in sets:
        parts, value = parse_set(item)
        set_path(data, parts, value, f"--set {item}")
    return Scenario.from_dict(data)


def _providers_override(text: str, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if text in ("mock", "anvil"):
        out = []
        for p in current:
            if p["kind"] != "remote":
                p = {**p, "kind": text}
                if text == "anvil":
                    p.pop("behaviour", None)
            out.append(p)
        return out
    path = Path(text)
    if path.suffix not in (".toml", ".json") or not path.is_file():
        raise ConfigError(f"--providers must be mock, anvil or a .toml/.json file, got {text!r}")
    try:
        raw = path.read_text()
        doc = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--providers {path}: {exc}") from None
    items = doc.get("providers") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ConfigError(f"--providers {path}: must hold a `providers` list")
    return items


# ---------------------------------------------------------------------------------
# The plan as text
# ---------------------------------------------------------------------------------


def describe_plan(scenario: Scenario, form: str) -> str:
    """The resolved plan, secrets masked: what `battle run` prints before it starts."""
    d = scenario.public()
    lines = [f"scenario {d['name']} ({form} form): {d['description']}".rstrip(": ")]
    lines.append(
        f"  load {d['duration_s']:g} s, seed {d['seed']}, block time {d['block_time_ms']} ms"
    )
    for p in d["providers"]:
        extra = p.get("url") or (json.dumps(p["behaviour"]) if p.get("behaviour") else "")
        lines.append(f"  provider {p['name']}: {p['kind']} {extra}".rstrip())
    sut = d["sut"]
    where = (
        sut.get("url") or " ".join(sut.get("command", [])) or "python -m examples.reference_router"
    )
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in sut.get("options", {}).items())
    lines.append(f"  sut: {sut['kind']} {where}" + (f" ({options})" if options else ""))
    for i, w in enumerate(d["workloads"]):
        shown = ", ".join(f"{k}={v}" for k, v in w.items() if k != "kind")
        lines.append(f"  workload {i}: {w['kind']} {shown}")
    for f in d["faults"]:
        shape = f" {json.dumps(f['schedule'])}" if "schedule" in f else ""
        params = f" {json.dumps(f['params'])}" if f.get("params") else ""
        lines.append(
            f"  fault {f['fault_id']}: {f['kind']} on {f['provider']} from {f['start_s']:g} s"
            f" for {f['duration_s']:g} s{shape}{params}"
        )
    for s in d["slos"]:
        text = s.get("slo") or f"{s['name']}: SQL {s['expect']}"
        lines.append(f"  slo {s.get('name') or text}: {text}")
    return "\n".join(lines)
