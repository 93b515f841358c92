"""The hardware cost report of a run, and the comparison of two fits (Markdown, self-contained HTML, PNG figures).

``write_report(folder)`` renders ``report.md``, ``report.html`` and figures from a run's
saved samples and fit; ``write_comparison(fit_a, fit_b)`` sets two fits side by side.
Extra sections plug in as section providers (``profiler.report.document``,
``profiler.report.build.section_providers``).
"""

from profiler.report.build import WrittenReport, section_providers, write_report
from profiler.report.compare import write_comparison
from profiler.report.document import Bullets, Figure, ReportContext, Section, SectionProvider, Table

__all__ = [
    "Bullets",
    "Figure",
    "ReportContext",
    "Section",
    "SectionProvider",
    "Table",
    "WrittenReport",
    "section_providers",
    "write_comparison",
    "write_report",
]
