"""Reporting: tables (markdown + CSV), figures (matplotlib) and an HTML page for a run folder.

Reporting computes nothing statistical; it reads what :func:`lbmm.run.run_study` wrote.
:func:`build_report` (``lbmm report RUN``) rebuilds ``tables/``, ``figures/`` and
``report.html`` of a run folder.
"""

from .html import build_report, render_html
from .tables import diagnostics_table, table1, table2, to_markdown, write_tables

__all__ = [
    "build_report",
    "diagnostics_table",
    "render_html",
    "table1",
    "table2",
    "to_markdown",
    "write_tables",
]
