"""A compliance report as a self-contained HTML page with an SVG chart of activity per day."""

from __future__ import annotations

from html import escape
from typing import Any

from tenant_security.headers import standalone_page_csp

# The HTML report's one style sheet, inline (the page is self-contained: an auditor can keep it);
# its CSP allows exactly this text by hash (REPORT_CSP).
REPORT_STYLE = (
    "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
    ".fail{color:#b00}.pass{color:#070}.insufficient_evidence{color:#a60}rect{fill:#36c}"
)
REPORT_CSP = standalone_page_csp(REPORT_STYLE)


def render_html(report: dict[str, Any]) -> str:
    """A readable page of the report with an SVG bar chart of activity per day."""
    days = report["activity_by_day"]
    peak = max([d["records"] for d in days] + [1])
    width = max(1, 720 // max(len(days), 1))
    bars = "".join(
        f'<rect x="{i * width}" y="{120 - 110 * d["records"] // peak}" width="{max(width - 1, 1)}" '
        f'height="{110 * d["records"] // peak}"><title>{escape(d["day"])}: {d["records"]}</title></rect>'
        for i, d in enumerate(days)
    )
    rows = "".join(
        f"<tr><td>{escape(c['id'])}</td><td class='{escape(c['status'])}'>{escape(c['status'])}</td>"
        f"<td>{len(c['findings'])}</td><td><code>{escape(str(c['evidence']))}</code></td></tr>"
        for c in report["checks"]
    )
    controls = "".join(
        f"<tr><td>{escape(c['id'])}</td><td>{escape(c['title'])}</td>"
        f"<td class='{escape(c['status'])}'>{escape(c['status'])}</td>"
        f"<td>{escape(', '.join(c['checks']))}</td></tr>"
        for c in report.get("controls", [])
    )
    findings = "".join(
        f"<li><b>{escape(c['id'])}</b>: <code>{escape(str(f))}</code></li>"
        for c in report["checks"]
        for f in c["findings"]
    )
    framework = escape(report["framework"])
    title = f"{framework} report {escape(report['tenant_id'])} {escape(report['period']['id'])}"
    chart = f'<svg role="img" aria-label="audit records per day" width="720" height="125">{bars}</svg>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{REPORT_STYLE}</style></head>
<body><h1>{framework} report — {escape(report["tenant_id"])}, {escape(report["period"]["id"])}</h1>
<p>Status: <b class="{escape(report["status"])}">{escape(report["status"])}</b>;
{report["records_examined"]} audit records examined; generated {escape(report["generated_at"])}.</p>
<h2>Activity per day</h2>{chart}
<h2>Controls</h2><table><tr><th>control</th><th>title</th><th>status</th><th>checks</th></tr>{controls}</table>
<h2>Checks</h2><table><tr><th>check</th><th>status</th><th>findings</th><th>evidence</th></tr>{rows}</table>
<h2>Findings</h2><ul>{findings or "<li>none</li>"}</ul></body></html>"""
