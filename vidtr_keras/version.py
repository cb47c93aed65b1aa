"""The package version, in a module of its own so that code inside the package can read it without
importing the package face (`vidtr_keras/__init__.py`) and its import-time effects."""

__version__ = "0.1.0"
