"""Plots and a self-contained HTML report of a :class:`~simbroker.BacktestResult`.

- :mod:`~simbroker.report.plot`: :func:`plot_result`, matplotlib figures (needs
  ``pip install 'simbroker[plot]'``).
- :mod:`~simbroker.report.page`: :func:`write_report`, the one-file HTML tear sheet
  (inline SVG, no matplotlib needed), built from :mod:`~simbroker.report.charts`,
  :mod:`~simbroker.report.tables` and :mod:`~simbroker.report.assets`.
- :mod:`~simbroker.report.drift_page`: :func:`drift_report`, the drift report of
  :func:`simbroker.drift` (also a section of :func:`write_report` with ``drift=``), and
  :mod:`~simbroker.report.drift_plot` its matplotlib figure.

This package depends on :mod:`simbroker.results`; results reach it only on call.
"""

from __future__ import annotations

from simbroker.report.drift_page import drift_report
from simbroker.report.page import write_report
from simbroker.report.plot import plot_result

__all__ = ["drift_report", "plot_result", "write_report"]
