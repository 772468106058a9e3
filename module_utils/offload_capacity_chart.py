# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_capacity_info): the capacity report as one self-contained HTML
# page - inline SVG and CSS, no script, no external resource (no JS, CSS, font or CDN), so that it opens anywhere,
# also offline or attached to a ticket. Per table: rows per hour against the parallel-offload threshold, and the
# offload durations (hourly median and maximum) with the least-squares trend, the warning level and the task
# timeout. Every text from the report is HTML-escaped. Pure: report in, text out.
# Imported as ansible.module_utils.offload_capacity_chart.
from __future__ import annotations

from datetime import datetime, timezone
from html import escape

try:
    from ansible.module_utils.offload_common import parse_utc
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import parse_utc

WIDTH, HEIGHT = 520, 190
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 24, 34
HOUR = 3600.0

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2933;background:#fff}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:0 0 6px}
.meta{color:#52606d;margin-bottom:16px}.status{font-weight:600;padding:2px 8px;border-radius:4px}
.ok{background:#e3f9e5;color:#0e5814}.recommendations{background:#fff3c4;color:#8d2b0b}
.incomplete{background:#e4e7eb;color:#323f4b}
ul.recs li{margin-bottom:6px}.blind{color:#8d2b0b}
table.mem{border-collapse:collapse;margin:8px 0 20px}table.mem td,table.mem th{border:1px solid #cbd2d9;padding:4px 10px;
text-align:right}table.mem th{background:#f5f7fa}table.mem td:first-child{text-align:left}
section{border-top:1px solid #e4e7eb;padding:14px 0}.charts{display:flex;flex-wrap:wrap;gap:16px}
.numbers{color:#52606d;font-size:.9em;margin:4px 0 0}.badge{background:#fff3c4;color:#8d2b0b;border-radius:4px;
padding:1px 6px;font-size:.8em;margin-left:6px}
svg text{font-size:11px;fill:#52606d}svg .title{font-size:12px;fill:#1f2933;font-weight:600}
.axis{stroke:#9aa5b1;stroke-width:1}.grid{stroke:#e4e7eb;stroke-width:1}
.rows{fill:none;stroke:#2680c2;stroke-width:1.5}.area{fill:#2680c2;fill-opacity:.12;stroke:none}
.limit{stroke:#d64545;stroke-width:1.2;stroke-dasharray:6 4}.warn{stroke:#f0b429;stroke-width:1.2;stroke-dasharray:4 3}
.median{fill:#2680c2}.max{fill:#9aa5b1}.trend{stroke:#7b2cbf;stroke-width:1.5;fill:none}
.projection{stroke:#7b2cbf;stroke-width:1.5;stroke-dasharray:3 3;fill:none}.now{stroke:#52606d;stroke-dasharray:2 3}
.empty{font-size:12px;fill:#9aa5b1}
"""


def compact(value: float) -> str:
    """12 -> '12', 72000 -> '72k', 5_200_000 -> '5.2M'."""
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return text + suffix
    return f"{value:.1f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


class Frame:
    """Pixel mapping of one chart: x is epoch seconds in [x0, x1], y a value in [0, y_max]."""

    def __init__(self, x0: float, x1: float, y_max: float):
        self.x0, self.x1 = x0, x1 if x1 > x0 else x0 + HOUR
        self.y_max = y_max if y_max > 0 else 1.0
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(self, t: float) -> float:
        return round(LEFT + (t - self.x0) / (self.x1 - self.x0) * self.w, 1)

    def y(self, v: float) -> float:
        return round(TOP + self.h - min(max(v, 0.0), self.y_max) / self.y_max * self.h, 1)

    def axes(self, title: str, unit) -> list[str]:
        out = [f'<text class="title" x="{LEFT}" y="{TOP - 2}">{escape(title)}</text>']
        for i in range(3):
            v = self.y_max * i / 2
            out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{self.y(v)}" y2="{self.y(v)}"/>')
            out.append(f'<text x="{LEFT - 6}" y="{self.y(v) + 4}" text-anchor="end">{escape(unit(v))}</text>')
        for i in range(4):
            t = self.x0 + (self.x1 - self.x0) * i / 3
            label = time_label(t)
            anchor = "start" if i == 0 else "end" if i == 3 else "middle"
            out.append(f'<text x="{self.x(t)}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}">{escape(label)}</text>')
        out.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{self.y(0)}" y2="{self.y(0)}"/>')
        out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{self.y(0)}"/>')
        return out

    def hline(self, value: float, css: str, label: str) -> list[str]:
        y = self.y(value)
        return [f'<line class="{css}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>',
                f'<text x="{WIDTH - RIGHT - 2}" y="{y - 3}" text-anchor="end">{escape(label)}</text>']


def time_label(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%m-%d %H:%M")


def _epoch(text) -> float | None:
    moment = parse_utc(text)
    return moment.timestamp() if moment else None


def _svg(parts: list[str], label: str) -> str:
    return (f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(label)}">' + "".join(parts) + "</svg>")


def rows_chart(table: str, info: dict, window: dict) -> str:
    series, volume = info.get("rows_per_hour"), info.get("volume")
    x0, x1 = _epoch(window["since"]), _epoch(window["until"])
    if not series or not volume:
        frame = Frame(x0, x1, 1)
        why = info.get("error") or "not read"
        empty = f'<text class="empty" x="{LEFT + 10}" y="{TOP + 40}">{escape(why[:90])}</text>'
        return _svg(frame.axes(f"{table}: rows per hour", compact) + [empty], f"{table} rows per hour")
    threshold = volume["threshold"]
    frame = Frame(x0, x1, max(volume["max"] or 0, threshold) * 1.15)
    pts = [(frame.x(_epoch(p["start"]) + HOUR / 2), frame.y(p["rows"])) for p in series]
    line = " ".join(f"{x},{y}" for x, y in pts)
    area = f"{pts[0][0]},{frame.y(0)} {line} {pts[-1][0]},{frame.y(0)}"
    parts = frame.axes(f"{table}: rows per hour", compact)
    parts += [f'<polygon class="area" points="{area}"/>', f'<polyline class="rows" points="{line}"/>']
    parts += frame.hline(threshold, "limit", f"parallel offload above {compact(threshold)}/h "
                                             f"for {volume['sustained_hours']} h")
    return _svg(parts, f"{table} rows per hour")


def duration_chart(table: str, info: dict, window: dict) -> str:
    duration = info.get("duration")
    x0, until = _epoch(window["since"]), _epoch(window["until"])
    if not duration:
        frame = Frame(x0, until, 1)
        empty = f'<text class="empty" x="{LEFT + 10}" y="{TOP + 40}">Prefect not read</text>'
        return _svg(frame.axes(f"{table}: offload duration", lambda v: f"{compact(v)} s") + [empty],
                    f"{table} offload duration")
    trend, points = duration["trend"], duration["hourly"]
    x1 = until + (trend["projection_hours"] or 0) * HOUR if trend["evaluated"] else until
    top = max([duration["timeout_seconds"]] + [p["max"] for p in points]
              + ([trend["projected_seconds"]] if trend["evaluated"] else []))
    frame = Frame(x0, x1, top * 1.1)
    parts = frame.axes(f"{table}: offload duration (hourly median, max)", lambda v: f"{compact(v)} s")
    parts += frame.hline(duration["timeout_seconds"], "limit", f"task timeout {compact(duration['timeout_seconds'])} s")
    parts += frame.hline(duration["warning_seconds"], "warn", f"warning {compact(duration['warning_seconds'])} s")
    if x1 > until:
        parts.append(f'<line class="now" x1="{frame.x(until)}" x2="{frame.x(until)}" y1="{TOP}" y2="{frame.y(0)}"/>')
    for p in points:
        x = frame.x(until + p["x"] * HOUR)
        parts.append(f'<circle class="max" cx="{x}" cy="{frame.y(p["max"])}" r="2"/>')
        parts.append(f'<circle class="median" cx="{x}" cy="{frame.y(p["median"])}" r="3">'
                     f'<title>{escape(p["start"])}: median {p["median"]:g} s, max {p["max"]:g} s, {p["count"]} run(s)'
                     '</title></circle>')
    if trend["evaluated"]:
        slope_h = trend["slope_seconds_per_day"] / 24
        first = min(p["x"] for p in points)
        start = (frame.x(until + first * HOUR), frame.y(trend["fitted_now_seconds"] + slope_h * first))
        now = (frame.x(until), frame.y(trend["fitted_now_seconds"]))
        end = (frame.x(x1), frame.y(trend["projected_seconds"]))
        parts.append(f'<polyline class="trend" points="{start[0]},{start[1]} {now[0]},{now[1]}"/>')
        parts.append(f'<polyline class="projection" points="{now[0]},{now[1]} {end[0]},{end[1]}"/>')
    if not points:
        parts.append(f'<text class="empty" x="{LEFT + 10}" y="{TOP + 40}">no timed successful offload in the window'
                     '</text>')
    return _svg(parts, f"{table} offload duration")


def _numbers(info: dict) -> str:
    volume, duration = info.get("volume") or {}, info.get("duration") or {}
    bits = []
    if volume:
        bits.append(f"rows/hour: last {volume['last_hour']:,}, mean {volume['mean']:,.0f}, max {volume['max']:,}; "
                    f"longest run above the threshold {volume['longest_run_hours']} h")
    if duration:
        if duration["completed"]:
            bits.append(f"duration: {duration['completed']} timed run(s), median {duration['median_seconds']:.1f} s, p95 "
                        f"{duration['p95_seconds']:.1f} s, max {duration['max_seconds']:.1f} s")
        trend = duration["trend"]
        bits.append(f"trend: {trend['slope_seconds_per_day']:+.2f} s/day, {trend['fitted_now_seconds']:.1f} s now"
                    if trend["evaluated"] else f"trend: {trend['reason']}")
        if duration["timeouts"] or duration["failures"]:
            bits.append(f"{duration['timeouts']} timed-out and {duration['failures']} failed attempt(s)")
    return "; ".join(bits)


def render_html(report: dict, host: str = "", generated_at: str = "") -> str:
    """The whole page for one report (offload_capacity.build_report)."""
    status, window = report["status"], report["window"]
    recs = report["recommendations"]
    by_subject: dict = {}
    for r in recs:
        by_subject.setdefault(r["subject"], []).append(r["rule"])
    head = [f"<h1>K2 offload capacity{' - ' + escape(host) if host else ''}</h1>",
            f'<div class="meta"><span class="status {escape(status)}">{escape(status.upper())}</span> '
            f"window {escape(window['since'])} to {escape(window['until'])} ({window['hours'] / 24:g} days)"
            f"{', generated ' + escape(generated_at) if generated_at else ''}</div>"]
    if recs:
        head.append('<h2>Recommendations</h2><ul class="recs">' + "".join(
            f"<li><b>{escape(r['rule'])}</b> ({escape(r['subject'])}): {escape(r['action'])}.<br>{escape(r['reason'])}</li>"
            for r in recs) + "</ul>")
    else:
        head.append("<p>No recommendation.</p>")
    if report["blind"]:
        head.append('<ul class="blind">' + "".join(f"<li>not read: {escape(b)}</li>" for b in report["blind"]) + "</ul>")
    rows = []
    for memory in report["memory"].values():
        mib = 1024 * 1024
        usage = f"{memory['usage_bytes'] / mib:,.0f} MiB" if memory["usage_bytes"] is not None else "-"
        limit = f"{memory['limit_bytes'] / mib:,.0f} MiB" if memory["limit_bytes"] else "-"
        fraction = f"{memory['fraction']:.1%}" if memory["fraction"] is not None else escape(memory["reason"] or "-")
        rows.append(f"<tr><td>{escape(memory['container'])}</td><td>{usage}</td><td>{limit}</td><td>{fraction}</td></tr>")
    head.append('<h2>Memory</h2><table class="mem"><tr><th>container</th><th>usage</th><th>limit</th><th>of limit</th>'
                f"</tr>{''.join(rows)}</table>")
    sections = []
    for table, info in report["tables"].items():
        badges = "".join(f'<span class="badge">{escape(rule)}</span>' for rule in by_subject.get(table, []))
        layer = f" ({escape(info['layer'])})" if info.get("layer") else ""
        sections.append(f"<section><h2>{escape(table)}{layer}{badges}</h2><div class=\"charts\">"
                        f"{rows_chart(table, info, window)}{duration_chart(table, info, window)}</div>"
                        f'<p class="numbers">{escape(_numbers(info))}</p></section>')
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>K2 offload capacity{' - ' + escape(host) if host else ''}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(head)}{''.join(sections)}</body></html>\n")
