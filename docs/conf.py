"""Sphinx configuration: markdown pages (myst-parser) and the generated trait reference."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's dockerspawner, not an installed one

from dockerspawner import __version__  # noqa: E402

project = "dockerspawner"
author = "dockerspawner contributors"
copyright = "dockerspawner contributors"
version = release = __version__

extensions = ["myst_parser", "traitref"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "_ext"]
html_theme = "alabaster"
html_static_path: list = []
html_theme_options = {"description": "JupyterHub spawners for Docker, Swarm and system users"}
