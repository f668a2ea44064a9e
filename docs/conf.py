"""Sphinx configuration for privagg's documentation.

Build with ``sphinx-build -W -b html docs DIR`` (the suite does, in a
temporary folder, with warnings as errors: ``tests/test_docs.py``). The API
reference is generated from the docstrings (autodoc + napoleon, numpy style);
the Markdown pages are read by MyST.
"""

from __future__ import annotations

project = "privagg"
author = "privagg contributors"
copyright = "2026, privagg contributors"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "none"        # the signatures carry the types; repeating them in the text adds nothing
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False

myst_heading_anchors = 3          # so [text](page.md#a-heading) links resolve

html_theme = "alabaster"
html_title = "privagg"
napoleon_use_ivar = True          # Attributes as fields, not directives (dataclass fields would be described twice)
