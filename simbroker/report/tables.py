"""HTML tables for the report: formatted cells that sort by their raw values.

Every cell shows a formatted value (percentages, thousands separators, dates at the
bars' resolution, durations in words) and carries the raw value in ``data-v``; the
page's script sorts a table when its header is clicked. Columns are declared with a
*kind* that decides both.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simbroker.results.format import _format_timedelta, format_timestamp

__all__ = ["Column", "cell", "data_table"]


@dataclass(frozen=True)
class Column:
    """A table column: the frame's ``key``, its header ``label`` and a ``kind``:
    ``pct`` (a fraction shown as a percentage), ``money`` (2 decimals), ``qty`` (up to
    4 decimals), ``int``, ``num`` (3 decimals), ``time``, ``delta``, ``bool`` or
    ``text``."""

    key: str
    label: str
    kind: str = "text"


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def cell(value: Any, kind: str) -> tuple[str, str]:
    """``(shown text, sort key)`` of one value; missing values show as empty and sort
    last."""
    if _missing(value):
        return "", ""
    if kind == "time":
        ts = pd.Timestamp(value)
        return format_timestamp(ts), str(ts.value)
    if kind == "delta":
        td = pd.Timedelta(value)
        return _format_timedelta(td), str(td.value)
    if kind == "bool":
        return ("yes" if value else "no"), ("1" if value else "0")
    if kind == "text":
        return str(value), str(value)
    v = float(value)
    if not math.isfinite(v):
        text = "\u221e" if v > 0 else "\u2212\u221e"
        return text, repr(v)
    if kind == "pct":
        text = f"{v:.2%}"
    elif kind == "money":
        text = f"{v:,.2f}"
    elif kind == "int":
        text = f"{round(v):,}"
    elif kind == "qty":
        text = f"{v:,.4f}".rstrip("0").rstrip(".")
    else:
        text = f"{v:,.3f}"
    return text.replace("-", "\u2212"), repr(v)


def _classes(kind: str) -> str:
    return "txt" if kind in ("text", "bool", "time") else "num"


def data_table(frame: pd.DataFrame, columns: Sequence[Column], *, table_id: str,
               max_rows: int | None = None, sign_colour: Sequence[str] = (),
               missing: Mapping[str, str] | None = None) -> str:
    """A sortable table of ``frame``'s ``columns`` (its first ``max_rows`` rows).

    ``sign_colour`` names columns whose negative values show red and positive green;
    ``missing`` gives the text of a missing value by column (default empty).
    """
    missing = missing or {}
    shown = frame if max_rows is None else frame.head(max_rows)
    head = "".join(
        f'<th class="{_classes(c.kind)}" data-kind="{c.kind}" data-col="{html.escape(c.key)}"'
        f' tabindex="0" aria-sort="none">{html.escape(c.label)}</th>' for c in columns)
    cols = [shown[c.key].to_numpy(object) if len(shown) else np.array([], object)
            for c in columns]
    rows = []
    for i in range(len(shown)):
        cells = []
        for c, values in zip(columns, cols, strict=True):
            text, key = cell(values[i], c.kind)
            if not text and c.key in missing:
                text = missing[c.key]
            cls = _classes(c.kind)
            if c.key in sign_colour and key and c.kind not in ("text", "bool", "time"):
                cls += " neg" if float(key) < 0 else " pos" if float(key) > 0 else ""
            cells.append(f'<td class="{cls}" data-v="{html.escape(key)}">'
                         f'{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows)
    return (f'<div class="scroll"><table id="{table_id}" class="data sortable">'
            f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>")
