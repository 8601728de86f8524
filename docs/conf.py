"""Sphinx configuration of the sb3-reinforce documentation (``make docs``).

The pages are Markdown (MyST) so that they read the same on GitHub and in the HTML build; the
``Parameters`` sections and the API page come from the docstrings (``:param:`` fields) through
autodoc.  Nothing here needs the network: no intersphinx inventories are downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The package is installed (editable) in the venv; this makes a plain checkout work as well.
sys.path.insert(0, str(ROOT))

from sb3_reinforce import __version__  # noqa: E402

project = "sb3-reinforce"
author = "sb3-reinforce contributors"
copyright = "sb3-reinforce contributors"
version = __version__
release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# Only pages: the build output, the runnable examples (pulled in with literalinclude) and this file's
# neighbours that are not pages stay out of the build.
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]

# MyST: $...$ and $$...$$ maths, amsmath environments, and anchors on headings down to level 3
# so that links such as ``reinforce.md#defaults`` resolve as they do on GitHub.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# autodoc: members in source order, the constructor's parameters documented on the class (SB3's
# convention), type hints in the signature.
autodoc_member_order = "bysource"
autoclass_content = "class"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}

# MathJax is loaded by the browser (from its CDN) when a page is read; the build itself is offline.

html_theme = "sphinx_rtd_theme"
html_title = f"sb3-reinforce {release}"
html_show_sourcelink = False
