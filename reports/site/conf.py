"""Sphinx configuration of the documentation site (``reports/site/``).

Built from the repository's own material, nothing copied: the generated report tables of
``reports/`` (the reference-layout benchmark table, our estimates of the reference table's rows,
the accuracy report, every recorded run of ``reports/measured/``), the estimator's command-line
help as ``python -m estimator <command> --help`` prints it, and the library's docstrings
(autodoc). ``_ext/repo_pages.py`` holds the two directives that read them at build time.

Build: ``python -m sphinx -W -b html reports/site OUT`` (``tests/test_docs_site.py`` does, in
the test command). The site lives under ``reports/`` because the top-level layout is fixed and
the site is a view of the reports: its pages include them by relative path.
"""
from __future__ import annotations

import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
ROOT = SITE.parents[1]
sys.path[:0] = [str(ROOT), str(SITE / "_ext")]

project = "LLM forward-pass estimator and benchmark"
author = "the llm-perf-estimator contributors"
extensions = ["sphinx.ext.autodoc", "repo_pages"]
exclude_patterns = ["_build", "_ext"]
html_theme = "alabaster"
html_static_path: list[str] = []
autodoc_typehints = "description"
autodoc_member_order = "bysource"
nitpicky = False
