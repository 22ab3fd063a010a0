"""The report page's stylesheet and its one small script (our own, inline, offline).

The script does three things: sorts a table when a header is clicked (by each cell's
``data-v``, numbers as numbers, empty cells last); zooms the time charts (drag across
a range, wheel over the chart, double-click to reset) by drawing their spec again with
the same rules as :func:`simbroker.report.charts.render_time_chart`; and records on
``<html>`` whether the page fits its window without horizontal scrolling
(``data-fits="true"``, or ``data-overflow`` naming what is too wide), which the tests
read back from a real browser.
"""

from __future__ import annotations

__all__ = ["CSS", "SCRIPT"]

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1180px;color:#1f2328;padding:16px 24px 48px;font-size:14px;line-height:1.4}
h1{font-size:1.5em;margin:.4em 0 .2em}h2{font-size:1.1em;margin:1.8em 0 .5em}
.meta{color:#57606a;font-size:13px;margin:0 0 1em}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:1.25em;font-variant-numeric:tabular-nums}
.card span{color:#57606a;font-size:12px}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px}
.grid>div{min-width:0}.grid.wide{grid-template-columns:minmax(0,5fr) minmax(0,7fr)}
figure.chart{margin:0}figure.chart svg{width:100%;height:auto;display:block;
font-size:11px;fill:#57606a;user-select:none}
svg.tchart{cursor:crosshair}
figcaption{color:#57606a;font-size:12px;margin-top:2px}
table{border-collapse:collapse;font-size:12.5px;font-variant-numeric:tabular-nums;width:100%}
td,th{padding:3px 8px;border-bottom:1px solid #d0d7de;text-align:right}
td.num{white-space:nowrap}td.txt{overflow-wrap:anywhere}
table.stats td{white-space:nowrap}table.stats td:first-child{white-space:normal}
th{background:#f6f8fa;position:sticky;top:0;font-weight:600;white-space:nowrap}
th.txt,td.txt{text-align:left}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#eaeef2}
th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
td.neg{color:#cf222e}td.pos{color:#1a7f37}
.scroll{max-height:460px;overflow-y:auto;border:1px solid #d0d7de}
table.stats td:first-child{color:#57606a;text-align:left}
table.stats th:first-child{text-align:left}
table.heat td{text-align:center;padding:4px 1px;white-space:nowrap}table.heat th{text-align:center}
table.heat td:first-child,table.heat th:first-child{text-align:left;padding-left:6px}
table.heat td.year{font-weight:600;border-left:2px solid #d0d7de}
.note{color:#57606a;font-size:12px}img.plot{max-width:100%;height:auto;display:block}
"""

SCRIPT = r"""
(function () {
  "use strict";
  // ---- sortable tables: click (or Enter on) a header; again to reverse.
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var desc = th.getAttribute("aria-sort") === "ascending";
    var text = th.dataset.kind === "text" || th.dataset.kind === "bool";
    table.querySelectorAll("th").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", desc ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, i) {
      var v = r.cells[col] ? r.cells[col].dataset.v : "";
      return {r: r, i: i, e: v === "", v: text ? v : parseFloat(v)};
    });
    keyed.sort(function (a, b) {
      if (a.e !== b.e) return a.e ? 1 : -1;  // empty cells last either way
      var c = text ? a.v.localeCompare(b.v) : a.v - b.v;
      if (desc) c = -c;
      return c || a.i - b.i;
    });
    keyed.forEach(function (k) { body.appendChild(k.r); });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(th); });
  });

  // ---- zoomable time charts: the same drawing as charts.render_time_chart.
  var SVGNS = "http://www.w3.org/2000/svg", LEGEND = 18, BOTTOM = 26;
  function niceTicks(lo, hi, n) {
    if (!isFinite(lo) || !isFinite(hi)) return [];
    if (hi <= lo) hi = lo + 1;
    var raw = (hi - lo) / Math.max(n, 1), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * mag; })
      .filter(function (s) { return s >= raw; })[0];
    var out = [], k = Math.ceil(lo / step - 1e-9), last = Math.floor(hi / step + 1e-9);
    for (; k <= last; k++) out.push(k * step);
    return out;
  }
  function label(v, kind, step) {
    var d;
    if (step > 0 && Math.abs(v) < step * 1e-6) v = 0;
    if (kind === "pct") {
      d = step > 0 ? Math.max(0, -Math.floor(Math.log10(step * 100))) : 0;
      return (v * 100).toFixed(d).replace("-", "\u2212") + "%";
    }
    d = step > 0 ? Math.max(0, -Math.floor(Math.log10(step))) : 0;
    d = Math.min(d, kind === "money" ? 2 : 3);
    return v.toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d})
      .replace("-", "\u2212");
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function draw(svg, spec, i0, i1) {
    var w = spec.w, left = spec.left, right = spec.right, span = Math.max(i1 - i0, 1);
    var pw = w - left - right, out = [];
    function px(i) { return left + (i - i0) / span * pw; }
    spec.panels.forEach(function (p) {
      var yTop = p.top + LEGEND, yBot = p.top + p.h - 6, vals = [];
      p.series.forEach(function (s) {
        for (var i = i0; i <= i1; i++) if (s.y[i] !== null) vals.push(s.y[i]);
        if (s.area) vals.push(0);
      });
      var lo = 0, hi = 1;
      if (vals.length) {
        lo = Math.min.apply(null, vals); hi = Math.max.apply(null, vals);
        var pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
        lo -= pad; hi += pad;
      }
      function py(v) { return yBot - (v - lo) / (hi - lo) * (yBot - yTop); }
      var ticks = niceTicks(lo, hi, Math.max(3, Math.floor((yBot - yTop) / 28)));
      var step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
      ticks.forEach(function (t) {
        var y = py(t).toFixed(1);
        out.push('<line x1="' + left + '" x2="' + (w - right) + '" y1="' + y + '" y2="' + y +
                 '" stroke="#eaeef2"/><text x="' + (left - 6) + '" y="' + (py(t) + 4).toFixed(1) +
                 '" text-anchor="end">' + esc(label(t, p.kind, step)) + "</text>");
      });
      var lx = left + 4;
      p.series.forEach(function (s) {
        var d = "", pen = "M", first = null, lastX = null;
        for (var i = i0; i <= i1; i++) {
          var v = s.y[i];
          if (v === null) { pen = "M"; continue; }
          var x = px(i).toFixed(1);
          if (first === null) first = x;
          lastX = x;
          d += pen + x + "," + py(v).toFixed(1); pen = "L";
        }
        if (s.area && first !== null) {
          var z = py(0).toFixed(1);
          out.push('<path d="' + d + " L" + lastX + "," + z + " L" + first + "," + z +
                   'Z" fill="' + s.colour + '" fill-opacity="0.3" stroke="none"/>');
        }
        out.push('<path d="' + d + '" fill="none" stroke="' + s.colour + '" stroke-width="1.4"' +
                 (s.dash ? ' stroke-dasharray="5 3"' : "") + "/>");
        out.push('<rect x="' + lx + '" y="' + (p.top + 5) + '" width="12" height="3" fill="' +
                 s.colour + '"/><text x="' + (lx + 16) + '" y="' + (p.top + 11) + '">' +
                 esc(s.name) + "</text>");
        lx += 24 + 7 * s.name.length;
      });
      out.push('<line x1="' + left + '" x2="' + left + '" y1="' + yTop + '" y2="' + yBot +
               '" stroke="#57606a"/>');
    });
    var bottom = spec.h - BOTTOM;
    out.push('<line x1="' + left + '" x2="' + (w - right) + '" y1="' + bottom + '" y2="' +
             bottom + '" stroke="#57606a"/>');
    var at = [];
    for (var k = 0; k < 6; k++) {
      var i = Math.min(i1, Math.round(i0 + k * span / 5));
      if (at.indexOf(i) < 0) at.push(i);
    }
    var texts = at.map(function (i) { return spec.x[i]; });
    var dates = texts.map(function (t) { return t.slice(0, 10); });
    var distinct = dates.filter(function (d, j) { return dates.indexOf(d) === j; });
    texts = distinct.length === dates.length ? dates
      : texts.map(function (t) { return t.replace(/ UTC$/, ""); });
    at.forEach(function (i, k) {
      var anchor = k === 0 ? "start" : k === at.length - 1 ? "end" : "middle";
      out.push('<text x="' + px(i).toFixed(1) + '" y="' + (bottom + 17) + '" text-anchor="' +
               anchor + '">' + esc(texts[k]) + "</text>");
    });
    out.push('<rect class="sel" x="0" y="0" width="0" height="' + bottom +
             '" fill="#0969da" fill-opacity="0.12" visibility="hidden"/>');
    svg.innerHTML = out.join("");
    svg.dataset.range = i0 + ":" + i1;
  }
  document.querySelectorAll("svg.tchart").forEach(function (svg) {
    var node = document.getElementById(svg.dataset.spec);
    if (!node) return;
    var spec = JSON.parse(node.textContent), n = spec.x.length;
    if (n < 2) return;
    var i0 = 0, i1 = n - 1, start = null;
    draw(svg, spec, i0, i1);
    function toIndex(evt) {
      var box = svg.getBoundingClientRect(), scale = spec.w / box.width;
      var x = (evt.clientX - box.left) * scale;
      var f = (x - spec.left) / (spec.w - spec.left - spec.right);
      return {x: x, i: i0 + Math.max(0, Math.min(1, f)) * (i1 - i0)};
    }
    function zoom(a, b) {
      a = Math.max(0, Math.floor(a)); b = Math.min(n - 1, Math.ceil(b));
      if (b - a < 2) return;
      i0 = a; i1 = b; draw(svg, spec, i0, i1);
    }
    svg.addEventListener("mousedown", function (e) { start = toIndex(e); e.preventDefault(); });
    svg.addEventListener("mousemove", function (e) {
      if (!start) return;
      var now = toIndex(e), sel = svg.querySelector("rect.sel");
      sel.setAttribute("x", Math.min(start.x, now.x));
      sel.setAttribute("width", Math.abs(now.x - start.x));
      sel.setAttribute("visibility", "visible");
    });
    window.addEventListener("mouseup", function (e) {
      if (!start) return;
      var end = toIndex(e), a = Math.min(start.i, end.i), b = Math.max(start.i, end.i);
      start = null;
      var sel = svg.querySelector("rect.sel");
      if (sel) sel.setAttribute("visibility", "hidden");
      if (b - a >= 2) zoom(a, b);
    });
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var at = toIndex(e).i, f = e.deltaY < 0 ? 0.8 : 1.25;
      var a = at - (at - i0) * f, b = at + (i1 - at) * f;
      if (a < 0) { b -= a; a = 0; }
      if (b > n - 1) { a -= b - (n - 1); b = n - 1; }
      zoom(Math.max(0, a), b);
    }, {passive: false});
    svg.addEventListener("dblclick", function () { zoom(0, n - 1); });
  });

  // ---- does the page fit its window? (read back by the tests from a real browser)
  function checkFit() {
    var root = document.documentElement, wide = [];
    if (root.scrollWidth > window.innerWidth) wide.push("page:" + root.scrollWidth);
    document.querySelectorAll(".scroll, table, svg").forEach(function (el) {
      if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
        wide.push((el.id || el.className.baseVal || el.className || el.tagName) + ":" +
                  el.scrollWidth + ">" + el.clientWidth);
      }
    });
    root.dataset.fits = String(wide.length === 0);
    root.dataset.overflow = wide.join(" ");
  }
  checkFit();
  window.addEventListener("resize", checkFit);
})();
"""
