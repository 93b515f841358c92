"""Layer 4, the report: a run's hardware cost report and the comparison of two fits (Markdown,
self-contained HTML, PNG figures), with the break-even and validation sections and figures.

``write_report(folder)`` renders ``report.md``, ``report.html`` and figures from a run's
saved samples and fit; ``write_comparison(fit_a, fit_b)`` sets two fits side by side.
Extra sections plug in as section providers (``profiler.report.document``,
``profiler.report.build.section_providers``). Names are imported on first use: a module of
this package (``style``, ``units``) loads without the rest.
"""

from profiler.lazy import lazy_exports

_PUBLIC = {
    "Bullets": "profiler.report.document",
    "Figure": "profiler.report.document",
    "ReportContext": "profiler.report.document",
    "Section": "profiler.report.document",
    "SectionProvider": "profiler.report.document",
    "Table": "profiler.report.document",
    "WrittenReport": "profiler.report.build",
    "section_providers": "profiler.report.build",
    "write_comparison": "profiler.report.compare",
    "write_report": "profiler.report.build",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
