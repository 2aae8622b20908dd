"""``--html FILE`` of dms profile and dms table-compare: one self-contained page.

No script and nothing fetched: the styles are inline and every histogram is
a small inline SVG (a <rect> per bucket), so the page opens the same from a
mail attachment or an air-gapped share.  Every value is escaped.
"""

from __future__ import annotations

import datetime
import html
from pathlib import Path
from typing import Any

_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:middle}
th{background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
.error{color:#b00020} .equal{color:#1b7f3b} .different{color:#b06000}
svg.hist rect{fill:#4a78c2} code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: list[str]) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1><p>made {when} by dms_pkg</p>" + "".join(body)
            + "</body></html>\n")


def histogram_svg(buckets: list[dict[str, Any]] | None, width: int = 120,
                  height: int = 32) -> str:
    if not buckets:
        return ""
    top = max(int(b["count"]) for b in buckets) or 1
    bar = width / len(buckets)
    rects = []
    for i, b in enumerate(buckets):
        h = round(height * int(b["count"]) / top, 1)
        rects.append(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}"'
                     f' height="{h}"><title>{_e(b["lo"])} .. {_e(b["hi"])}: '
                     f'{int(b["count"]):,}</title></rect>')
    return (f'<svg class="hist" width="{width}" height="{height}" role="img"'
            f' viewBox="0 0 {width} {height}">' + "".join(rects) + "</svg>")


def profile_page(body: dict[str, Any]) -> str:
    """The page of ``dms profile``'s JSON (batch.as_json's shape)."""
    parts = ["<h2>Tables</h2><table><tr><th>table</th><th>dialect</th><th>rows</th>"
             "<th>change</th><th>seconds</th><th>error</th></tr>"]
    for t in body["tables"]:
        error = t["error"]["message"] if t.get("error") else ""
        parts.append(
            f"<tr><td>{_e(t['table'])}</td><td>{_e(t['dialect'])}</td>"
            f"<td class=\"n\">{_e(_num(t['row_count']))}</td>"
            f"<td class=\"n\">{_e(_num(t['row_count_change'], sign=True))}</td>"
            f"<td class=\"n\">{t['seconds']:.2f}</td><td class=\"error\">{_e(error)}</td></tr>")
    parts.append("</table>")
    for t in body["tables"]:
        if t.get("error"):
            continue
        parts.append(f"<h2 id=\"{_e(t['table'])}\">{_e(t['table'])}</h2><table class=\"columns\">"
                     "<tr><th>column</th><th>type</th><th>nulls</th><th>distinct</th>"
                     "<th>min</th><th>max</th><th>mean</th><th>stddev</th><th>length</th>"
                     "<th>histogram</th></tr>")
        for c in t["columns"]:
            length = (f"{c['min_length']}..{c['max_length']} (avg {c['avg_length']:.1f})"
                      if c.get("avg_length") is not None else "")
            nulls = f"{c['null_ratio']:.1%}" if c.get("null_ratio") is not None else ""
            parts.append(
                f"<tr><td>{_e(c['column'])}</td><td><code>{_e(c['type'])}</code></td>"
                f"<td class=\"n\">{nulls}</td>"
                f"<td class=\"n\">{_e(_num(c.get('distinct_count')))}</td>"
                f"<td>{_e(c.get('min'))}</td><td>{_e(c.get('max'))}</td>"
                f"<td class=\"n\">{_e(_float(c.get('mean')))}</td>"
                f"<td class=\"n\">{_e(_float(c.get('stddev')))}</td><td>{_e(length)}</td>"
                f"<td>{histogram_svg(c.get('histogram'))}</td></tr>")
        parts.append("</table>")
    return _page("dms profile", parts)


def compare_page(body: dict[str, Any], shown: int = 200) -> str:
    """The page of ``dms table-compare``'s JSON."""
    parts = ["<h2>Pairs</h2><table><tr><th>pair</th><th>status</th><th>rows A</th>"
             "<th>rows B</th><th>only in A</th><th>only in B</th><th>different</th>"
             "<th>seconds</th></tr>"]
    for p in body["pairs"]:
        cells = ([_num(p.get("rows_a")), _num(p.get("rows_b")),
                  len(p.get("only_in_a", [])), len(p.get("only_in_b", [])),
                  len(p.get("different", []))] if p["status"] != "error" else ["", "", "", "", ""])
        parts.append(f"<tr><td>{_e(p['pair'])}</td><td class=\"{_e(p['status'])}\">"
                     f"{_e(p['status'])}</td>"
                     + "".join(f"<td class=\"n\">{_e(v)}</td>" for v in cells)
                     + f"<td class=\"n\">{p['seconds']:.2f}</td></tr>")
    parts.append("</table>")
    for p in body["pairs"]:
        if p["status"] == "equal":
            continue
        parts.append(f"<h2>{_e(p['pair'])}</h2>")
        if p["status"] == "error":
            parts.append(f"<p class=\"error\">{_e(p['error']['message'])}</p>")
            continue
        key = ", ".join(p["key"])
        for name in ("only_in_a", "only_in_b", "different"):
            keys = p.get(name) or []
            if not keys:
                continue
            items = "".join(f"<li><code>{_e(_key(k))}</code></li>" for k in keys[:shown])
            more = f"<p>and {len(keys) - shown} more</p>" if len(keys) > shown else ""
            parts.append(f"<h3>{_e(name.replace('_', ' '))} ({len(keys):,}, by {_e(key)})</h3>"
                         f"<ul class=\"{name}\">{items}</ul>{more}")
    return _page("dms table-compare", parts)


def write(path: str | Path, page: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def _num(value: Any, sign: bool = False) -> str:
    if value is None:
        return ""
    return f"{int(value):+,}" if sign else f"{int(value):,}"


def _float(value: Any) -> str:
    return "" if value is None else f"{float(value):.6g}"


def _key(key: list[Any]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(str(v) for v in key) + ")"
