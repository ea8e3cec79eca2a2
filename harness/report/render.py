"""A report as a list of blocks, rendered twice: report.md and index.html.

Blocks: ("h", level, text), ("p", text), ("kv", [(key, value)]), ("table", DataFrame),
("img", relative path, caption), ("verdict", claim id, verdict, claim text, numbers). A table cell
may be a Link (text, href); every heading gets the anchor `anchor(text)` (GitHub's rule: lower
case, spaces to hyphens, punctuation but - and _ dropped), so `#anchor` links reach it in both.
The HTML is one self-contained file (inline CSS) that refers to the PNGs beside it.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

Block = tuple

VERDICT_COLOURS = {"holds": "#1b7f3b", "does not hold": "#b3261e", "inconclusive": "#8a6d00"}

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0} th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em} dt{font-weight:600} dd{margin:0}
figure{margin:1.2em 0} img{max-width:100%;border:1px solid #eee} figcaption{font-size:13px;color:#555}
.verdict{font-weight:700;text-transform:uppercase;font-size:.85em;padding:1px 6px;border-radius:3px;color:#fff}
.claim{margin:1em 0;padding:.6em .9em;border-left:4px solid #ccc;background:#fafafa}
code{background:#f3f3f3;padding:0 3px}
"""


@dataclass(frozen=True)
class Link:
    text: str
    href: str

    def __str__(self) -> str:
        return self.text


def anchor(text: str) -> str:
    """The id of a heading: lower case, spaces -> '-', other punctuation but '-' and '_' dropped."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _md_verdict(cid: str, verdict: str, text: str, numbers: str) -> str:
    return f"**{cid}** — **{verdict}**\n\n> {text}\n\n{numbers}"


def _html_verdict(cid: str, verdict: str, text: str, numbers: str) -> str:
    e, colour = html.escape, VERDICT_COLOURS.get(verdict, "#555")
    return (f'<div class="claim"><b>{e(cid)}</b> <span class="verdict" style="background:{colour}">'
            f"{e(verdict)}</span><p><i>{e(text)}</i></p><p>{e(numbers)}</p></div>")


def _html_img(src: str, caption: str) -> str:
    e = html.escape
    return f'<figure><img src="{e(src)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'


def _html_kv(pairs) -> str:
    e = html.escape
    return "<dl>" + "".join(f"<dt>{e(str(k))}</dt><dd>{_inline_code(e(str(v)))}</dd>" for k, v in pairs) + "</dl>"


# block kind -> renderer of the block's fields, one table per output format
MARKDOWN = {
    "h": lambda level, text: "#" * level + " " + text,
    "p": lambda text: text,
    "kv": lambda pairs: "\n".join(f"- **{k}**: {v}" for k, v in pairs),
    "table": lambda df: _md_table(df),
    "img": lambda src, caption: f"![{_md_escape(caption)}]({src})\n\n*{caption}*",
    "verdict": _md_verdict,
}
HTML = {
    "h": lambda level, text: f'<h{level} id="{html.escape(anchor(text))}">{html.escape(text)}</h{level}>',
    "p": lambda text: f"<p>{_inline_code(html.escape(text))}</p>",
    "kv": _html_kv,
    "table": lambda df: _html_table(df),
    "img": _html_img,
    "verdict": _html_verdict,
}


def markdown(blocks: list[Block]) -> str:
    return "\n\n".join(MARKDOWN[b[0]](*b[1:]) for b in blocks) + "\n"


def to_html(blocks: list[Block], title: str) -> str:
    body = "\n".join(HTML[b[0]](*b[1:]) for b in blocks)
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def _cell(v: Any) -> str:
    if isinstance(v, Link):
        return v.text
    if isinstance(v, float):
        return "–" if v != v else f"{v:.4g}"
    return str(v)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("[", "(").replace("]", ")")


def _md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(_md_escape(str(c)) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    md = lambda v: f"[{_md_escape(v.text)}]({v.href})" if isinstance(v, Link) else _md_escape(_cell(v))
    rows = ["| " + " | ".join(md(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _html_table(df: pd.DataFrame) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_cell(v: Any) -> str:
    """A link, a verdict (in its colour), a number (right-aligned) or text (left-aligned)."""
    e = html.escape
    if isinstance(v, Link):
        return f'<td><a href="{e(v.href)}">{e(v.text)}</a></td>'
    text = _cell(v)
    if text in VERDICT_COLOURS:
        return f'<td><span class="verdict" style="background:{VERDICT_COLOURS[text]}">{e(text)}</span></td>'
    numeric = isinstance(v, (int, float)) or bool(re.fullmatch(r"[-+]?[\d.,e+\-]+( ± [\d.e+\-]+)?|–", text))
    return f'<td class="num">{e(text)}</td>' if numeric else f"<td>{e(text)}</td>"


def _inline_code(s: str) -> str:
    """`x` -> <code>x</code> (after escaping; backticks survive html.escape)."""
    parts = s.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
