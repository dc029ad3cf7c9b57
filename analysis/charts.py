"""The reports' charts as Vega-Lite specs, built with altair from the judged run's
series. `report.md` gets them as SVG files rendered offline by vl-convert; `report.html`
embeds the specs with the Vega libraries inlined (no network)."""

from __future__ import annotations

from functools import cache

import altair as alt

__all__ = ["build_charts", "javascript_bundle", "render_svg"]

WIDTH = 640
HEIGHT = 180


def _fault_bands(report: dict) -> list[dict]:
    return [
        {
            "fault": row["phase"].removeprefix("during:"),
            "from_s": row["from_s"],
            "to_s": row["to_s"],
        }
        for row in report["tables"].get("phase_table", [])
        if row["phase"].startswith("during:")
    ]


def _with_bands(chart: alt.Chart, bands: list[dict]) -> alt.LayerChart | alt.Chart:
    if not bands:
        return chart
    shade = (
        alt.Chart(alt.Data(values=bands))
        .mark_rect(opacity=0.15, color="#d62728")
        .encode(x="from_s:Q", x2="to_s:Q", tooltip=["fault:N", "from_s:Q", "to_s:Q"])
    )
    # Shading on top, translucent, so that it shows over areas too.
    return alt.layer(chart, shade)


def _base(name: str) -> alt.Chart:
    # Data by name, attached as the spec's `datasets` after to_dict: altair validates a
    # spec against the Vega-Lite schema row by row, which took 5 s for the series of a
    # 1,000 s run; the specs' shape is fixed by this module and checked in a browser by
    # tests/integration/test_analysis_html.py.
    return alt.Chart(alt.Data(name=name)).properties(width=WIDTH, height=HEIGHT)


def build_charts(report: dict) -> dict[str, dict]:
    """Chart name -> Vega-Lite spec (dict), for the series the run has data for."""
    series = report["series"]
    bands = _fault_bands(report)
    charts: dict[str, alt.TopLevelMixin] = {}
    # Chart name -> the datasets (name -> rows) it reads.
    data: dict[str, dict[str, list[dict]]] = {}
    req = series.get("series_requests", [])
    if req:
        x = alt.X("second:Q", title="seconds after t0")
        throughput = (
            _base("requests")
            .mark_line()
            .encode(
                x=x, y=alt.Y("requests:Q", title="requests / s"), tooltip=["second:Q", "requests:Q"]
            )
        )
        success = (
            _base("requests")
            .mark_line(color="#2ca02c")
            .encode(
                x=x,
                y=alt.Y("success_rate:Q", title="success rate", scale=alt.Scale(domain=[0, 1])),
                tooltip=["second:Q", "success_rate:Q"],
            )
        )
        data["throughput"] = {"requests": req}
        charts["throughput"] = alt.vconcat(
            _with_bands(throughput, bands).properties(title="Throughput (faults shaded)"),
            _with_bands(success, bands).properties(title="Success rate per second"),
        )
        long = [
            {"second": r["second"], "percentile": name, "ms": r[f"{name}_ms"]}
            for r in req
            for name in ("p50", "p95", "p99")
        ]
        data["latency"] = {"latency": long}
        latency = (
            _base("latency")
            .mark_line()
            .encode(
                x=x,
                y=alt.Y("ms:Q", title="latency (ms)"),
                color="percentile:N",
                tooltip=["second:Q", "percentile:N", "ms:Q"],
            )
        )
        charts["latency"] = _with_bands(latency, bands).properties(
            title="Latency percentiles per second (from the intended send time)"
        )
    share = series.get("series_provider_share", [])
    if share:
        data["provider_share"] = {"share": share}
        charts["provider_share"] = _with_bands(
            _base("share")
            .mark_area()
            .encode(
                x=alt.X("second:Q", title="seconds after t0"),
                y=alt.Y("share:Q", stack="normalize", title="share of upstream exchanges"),
                color="provider:N",
                tooltip=["second:Q", "provider:N", "exchanges:Q", "share:Q"],
            ),
            bands,
        ).properties(title="Traffic share per provider")
    ws = series.get("series_ws_delay", [])
    if ws:
        long = [
            {"second": r["second"], "stat": k, "ms": r[f"{k}_ms"]}
            for r in ws
            for k in ("p50", "max")
        ]
        data["ws_delivery"] = {"ws": long}
        charts["ws_delivery"] = _with_bands(
            _base("ws")
            .mark_line()
            .encode(
                x=alt.X("second:Q", title="seconds after t0"),
                y=alt.Y("ms:Q", title="delivery delay (ms)"),
                color="stat:N",
                tooltip=["second:Q", "stat:N", "ms:Q"],
            ),
            bands,
        ).properties(title="WebSocket newHeads delivery delay")
    system = series.get("series_system", [])
    if system:
        x = alt.X("second:Q", title="seconds after t0")
        data["system"] = {"system": system}
        charts["system"] = alt.vconcat(
            _base("system")
            .mark_line()
            .encode(
                x=x,
                y=alt.Y("rss_mb:Q", title="RSS (MB)"),
                color="role:N",
                tooltip=["second:Q", "role:N", "rss_mb:Q"],
            )
            .properties(title="Memory per role"),
            _base("system")
            .mark_line()
            .encode(
                x=x,
                y=alt.Y("cpu:Q", title="CPU (cores)"),
                color="role:N",
                tooltip=["second:Q", "role:N", "cpu:Q"],
            )
            .properties(title="CPU per role"),
        )
    hist = series.get("latency_histogram", [])
    if hist:
        data["latency_distribution"] = {"histogram": hist}
        charts["latency_distribution"] = (
            _base("histogram")
            .mark_bar()
            .encode(
                x=alt.X(
                    "bucket_ms:O",
                    title="latency bucket (ms, log steps)",
                    axis=alt.Axis(format=".3~g"),
                ),
                y=alt.Y("requests:Q", scale=alt.Scale(type="symlog")),
                tooltip=["bucket_ms:Q", "requests:Q"],
            )
            .properties(title="Latency distribution")
        )
    specs = {}
    for name, chart in charts.items():
        spec = chart.to_dict(validate=False)
        spec["datasets"] = {**spec.get("datasets", {}), **data[name]}
        specs[name] = spec
    return specs


def render_svg(spec: dict) -> str:
    """One chart as SVG, rendered offline."""
    import vl_convert

    return vl_convert.vegalite_to_svg(spec)


@cache
def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script that defines `window.vegaEmbed`."""
    import vl_convert

    return vl_convert.javascript_bundle()
