"""Writing a judged run's reports: report.json, report.md (with SVG charts), report.html
(one self-contained offline file), junit.xml, and the printed summary."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import jinja2

from .verdict import RunJudgement

__all__ = ["summary_text", "write_reports"]

CHART_DIR = "charts"


def _num(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.4g}"
    return str(value)


def _pct(value: object) -> str:
    if value is None:
        return "—"
    return f"{float(value) * 100:+.1f}%"


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, ""),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["md"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    env.filters["cell"] = _cell
    env.filters["cell_html"] = lambda v: _cell(v).replace("\\|", "|")
    env.filters["oneline"] = lambda s: " ".join(str(s).split())
    return env


def _json_default(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _cell(value: object) -> str:
    """A witness's value in a table cell: numbers as the reports print them, lists
    joined, pipes escaped for Markdown."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return _num(value)
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _witness_text(r: dict) -> str:
    rows = r.get("witnesses") or []
    if not rows:
        return ""
    lines = [f"witnesses ({len(rows)} of {r.get('witness_count')}):"]
    lines += ["  " + ", ".join(f"{k}={_cell(v)}" for k, v in w.items()) for w in rows]
    return "\n" + "\n".join(lines) + f"\nall witnesses:\n{r.get('witness_query', '')}"


def _script_json(value: object) -> str:
    # Inside <script>, "</" would end the element early.
    return json.dumps(value, default=_json_default).replace("</", "<\\/")


def write_junit(data: dict, path: Path) -> Path:
    """One test case per SLO (suite `slos`) and per validity check (suite `validity`);
    a failed one carries its evidence."""
    root = ET.Element("testsuites", name=f"battle {data['run']}")
    for suite_name in ("validity", "slos"):
        results = data[suite_name]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=suite_name,
            tests=str(len(results)),
            failures=str(sum(not r["passed"] for r in results)),
            errors="0",
        )
        for r in results:
            case = ET.SubElement(
                suite, "testcase", classname=f"battle.{suite_name}", name=r["expression"]
            )
            evidence = (
                f"observed: {_num(r['observed'])} {r['unit']}".rstrip()
                + (f"\nworst window: {r['window']}" if r["window"] else "")
                + (f"\nnote: {r['note']}" if r["note"] else "")
                + f"\nquery:\n{r['query']}"
                + _witness_text(r)
            )
            if not r["passed"]:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{r['expression']} did not hold: observed {_num(r['observed'])}",
                )
                failure.text = evidence
            ET.SubElement(case, "system-out").text = evidence
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
    return path


def write_reports(judgement: RunJudgement, *, charts: bool = True) -> list[Path]:
    """Writes report.json, report.md (and its charts), report.html and junit.xml into
    the run directory and returns their paths. `charts=False` skips the charts (and
    report.html, which is made of them)."""
    data = judgement.as_dict()
    run_dir = judgement.run_dir
    written = []
    json_path = run_dir / "report.json"
    json_path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    written.append(json_path)

    specs: dict[str, dict] = {}
    images: dict[str, str] = {}
    if charts:
        from .charts import build_charts, render_svg

        specs = build_charts(data)
        chart_dir = run_dir / CHART_DIR
        chart_dir.mkdir(exist_ok=True)
        for name, spec in specs.items():
            path = chart_dir / f"{name}.svg"
            path.write_text(render_svg(spec))
            images[name] = f"{CHART_DIR}/{name}.svg"
            written.append(path)

    md_path = run_dir / "report.md"
    md_path.write_text(_env(False).get_template("report.md.j2").render(r=data, images=images))
    written.append(md_path)
    written.append(write_junit(data, run_dir / "junit.xml"))
    if charts:
        from .charts import javascript_bundle

        html = (
            _env(True)
            .get_template("report.html.j2")
            .render(
                r=data,
                specs_json=jinja2.utils.markupsafe.Markup(_script_json(specs)),
                chart_names=list(specs),
                bundle=jinja2.utils.markupsafe.Markup(
                    javascript_bundle().replace("</script", "<\\/script")
                ),
            )
        )
        html_path = run_dir / "report.html"
        html_path.write_text(html)
        written.append(html_path)
    return written


def summary_text(judgement: RunJudgement) -> str:
    """A few lines for the terminal: verdict, each SLO, and where the reports are."""
    m = judgement.metrics
    lines = [
        f"verdict: {judgement.verdict.upper()} (exit {int(judgement.exit_code)})",
        f"requests: {_num(m['requests_total'])}  success: {_num(m['success_rate'])}"
        f"  p50: {_num(m['latency_p50_ms'])} ms  p95: {_num(m['latency_p95_ms'])} ms"
        f"  p99: {_num(m['latency_p99_ms'])} ms",
        f"upstream exchanges: {_num(m['upstream_exchanges'])}"
        f"  failovers: {_num(m['failovers'])}  amplification: {_num(m['amplification'])}"
        f"  correlated: {_num(m['correlation_coverage'])}",
    ]
    for kind, results in (("validity", judgement.validity), ("SLO", judgement.slos)):
        for r in results:
            mark = "ok  " if r.passed else "FAIL"
            lines.append(f"  {mark} {kind} {r.expression} (observed {_num(r.observed)})")
    if judgement.comparison is not None:
        for c in judgement.comparison:
            if c.regressed:
                lines.append(
                    f"  REGR baseline {c.metric}: {_num(c.observed)} vs {_num(c.baseline)}"
                    f" ({c.direction} is better, tolerance {c.tolerance_text})"
                )
    lines.append(f"reports: {judgement.run_dir / 'report.md'}  {judgement.run_dir / 'report.json'}")
    return "\n".join(lines)
