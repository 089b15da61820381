"""nst's version number, from the installed package's metadata (pyproject.toml's).

A ground module, so that every layer can name the version without importing
the package's top (`nst/__init__`), which re-exports it.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("nst")  # the one version number: pyproject.toml's
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
