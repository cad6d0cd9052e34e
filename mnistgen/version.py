"""The mnistgen version, in one place (the package, cards and file attributes record it)."""

__version__ = "0.1.0"
