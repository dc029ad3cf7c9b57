"""Scenarios from files and names, CLI overrides, and the resolved plan as text.

`load_scenario(target)` takes a `.py` file (defining `scenario`, or `build()` /
`build(full)`), a `.toml` file (the `Scenario.to_dict()` form; an optional `[full]`
table is merged over the rest for the full form), or a built-in name.
`apply_overrides` edits the dict form (`--rate`, `--duration`, `--seed`, `--sut-url`,
`--sut FILE`, `--providers`, `--set a.b.c=v`, `--expect k=v`) and validates the result
again. The router profile (`expect`) is applied twice on purpose: given to
`load_scenario`, so that a built-in's build sees it, and to `apply_overrides`, so that
it wins over the scenario's own.
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

from analysis.expect import EXPECTATIONS, resolve_expect

from .api import Scenario
from .errors import ConfigError
from .sut import sut_from_dict

__all__ = [
    "apply_overrides",
    "describe_plan",
    "expect_from_sets",
    "load_scenario",
    "load_sut_file",
    "parse_expect",
    "parse_set",
    "set_path",
]


def load_scenario(
    target: str, *, full: bool = False, expect: Mapping[str, float] | None = None
) -> tuple[Scenario, str]:
    """The scenario `target` names, and its form (`fast`, `full`, or `file`).

    Args:
        expect: declared expectations applied over the scenario's own; a built-in's
            `build(full, expect)` (and a file's `build(full, expect)`) gets them
            resolved, so that its SLOs follow them.

    Raises:
        ConfigError: the file is missing or wrong, or no built-in has that name.
    """
    given = dict(expect or {})
    _resolved(given, "expect")
    path = Path(target)
    form = "full" if full else "fast"
    if path.suffix == ".py":
        return _declare(_from_python(path, full, given), given), form
    if path.suffix == ".toml":
        return _from_toml(path, full, given), form
    if path.exists() or "/" in target:
        raise ConfigError(f"scenario {target!r} must be a .py or .toml file or a built-in name")
    from .builtin import get

    return get(target).scenario(full=full, expect=given), form


def _resolved(given: Mapping[str, Any], where: str) -> dict[str, float]:
    try:
        return resolve_expect(given)
    except ValueError as exc:
        raise ConfigError(str(exc) if where == "expect" else f"{where}: {exc}") from None


def _declare(scenario: Scenario, given: Mapping[str, float]) -> Scenario:
    return scenario.replace(expect={**scenario.expect, **given}) if given else scenario


def _from_python(path: Path, full: bool, given: Mapping[str, float] | None = None) -> Scenario:
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
        params = inspect.signature(build).parameters
        kw: dict[str, Any] = {"full": full} if "full" in params else {}
        if "expect" in params:
            kw["expect"] = _resolved(given or {}, "expect")
        try:
            scenario = build(**kw)
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


def _from_toml(path: Path, full: bool, given: Mapping[str, float] | None = None) -> Scenario:
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
    if given:
        declared = data.get("expect", {})
        data["expect"] = {**declared, **given} if isinstance(declared, dict) else declared
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


def parse_expect(items: Sequence[str]) -> dict[str, float]:
    """`--expect KEY=VALUE` items as declared expectations (VALUE a number > 0).

    Raises:
        ConfigError: naming the item and the expectation that is wrong.
    """
    out: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--expect {item!r} must read key=value")
        try:
            value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        _resolved({key: value}, f"--expect {item}")
        out[key] = value
    return out


def expect_from_sets(sets: Sequence[str]) -> dict[str, Any]:
    """The expectations `--set expect.KEY=VALUE` (or `--set expect={...}`) declare, so
    that a built-in's build sees them as it sees `--expect`."""
    out: dict[str, Any] = {}
    for item in sets:
        parts, value = parse_set(item)
        if parts == ["expect"] and isinstance(value, dict):
            out.update(value)
        elif len(parts) == 2 and parts[0] == "expect":
            out[parts[1]] = value
    if out:
        _resolved(out, "--set")
    return out


def load_sut_file(path: Path | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--sut FILE`: the `[sut]` table (a scenario file's schema) and the optional
    `[expect]` table (the router profile) of a TOML file. Relative paths in it (the
    template, command items naming files) are resolved against the file's folder.

    Returns:
        The SUT in its dict form (`Sut.to_dict()`), the declared expectations.

    Raises:
        ConfigError: the file is missing, is not TOML, or has a bad field (named).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--sut {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--sut {path}: invalid TOML: {exc}") from None
    extra = sorted(set(data) - {"sut", "expect"})
    if extra:
        raise ConfigError(f"--sut {path}: {extra[0]} is not a known table (known: sut, expect)")
    if "sut" not in data:
        raise ConfigError(f"--sut {path}: needs a [sut] table")
    expect = data.get("expect", {})
    if not isinstance(expect, dict):
        raise ConfigError(f"--sut {path}: expect must be a table, got {type(expect).__name__}")
    _resolved(expect, f"--sut {path}")
    try:
        sut = sut_from_dict(data["sut"], base_dir=path.parent.resolve())
        sut.check()
    except ConfigError as exc:
        raise ConfigError(f"--sut {path}: {exc}") from None
    return sut.to_dict(), dict(expect)


def apply_overrides(
    scenario: Scenario,
    *,
    rate: float | None = None,
    duration: float | None = None,
    seed: int | None = None,
    sut_url: str | None = None,
    providers: str | None = None,
    sets: Sequence[str] = (),
    sut: Mapping[str, Any] | None = None,
    expect: Mapping[str, Any] | None = None,
) -> Scenario:
    """`scenario` with the CLI's overrides applied, validated again.

    `--rate` sets every HTTP workload's constant rate (replacing an arrival model);
    `--providers mock|anvil` switches the kind of every non-remote provider,
    `--providers FILE.toml|FILE.json` replaces the list with the file's `providers`;
    `--sut-url URL` makes the SUT external; `sut` (`--sut FILE`'s table) replaces the
    SUT wholesale; `expect` is applied over the scenario's expectations, after `sets`.

    Raises:
        ConfigError: naming the flag or the field that is wrong.
    """
    if sut is not None and sut_url is not None:
        raise ConfigError("--sut and --sut-url both replace the SUT: give one")
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
    if sut is not None:
        data["sut"] = copy.deepcopy(dict(sut))
    if providers is not None:
        data["providers"] = _providers_override(providers, data["providers"])
    for item in sets:
        parts, value = parse_set(item)
        set_path(data, parts, value, f"--set {item}")
    if expect:
        declared = data.get("expect")
        data["expect"] = {**(declared if isinstance(declared, dict) else {}), **expect}
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
    d = scenario.resolved()
    lines = [f"scenario {d['name']} ({form} form): {d['description']}".rstrip(": ")]
    load = f"  load {d['duration_s']:g} s"
    if d["duration_s"] != d["duration_s_declared"]:
        load += (
            f" (declared {d['duration_s_declared']:g} s; extended to the last fault's end"
            f" {scenario.last_fault_end_s:g} s + come_back_s {d['expect']['come_back_s']:g} s"
            " + 2 s, to see the router come back)"
        )
    lines.append(f"{load}, seed {d['seed']}, block time {d['block_time_ms']} ms")
    for p in d["providers"]:
        extra = p.get("url") or (json.dumps(p["behaviour"]) if p.get("behaviour") else "")
        lines.append(f"  provider {p['name']}: {p['kind']} {extra}".rstrip())
    sut = d["sut"]
    command = " ".join(a if isinstance(a, str) else json.dumps(a) for a in sut.get("command", []))
    where = sut.get("url") or command or "python -m examples.reference_router"
    if sut.get("path"):
        where += f" path {sut['path']}"
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
    for name, value in d["expect"].items():
        how = "declared" if name in d["expect_declared"] else "default"
        lines.append(f"  expect {name} = {value:g} {EXPECTATIONS[name].unit} ({how})")
    return "\n".join(lines)
