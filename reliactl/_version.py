"""The version of reliactl (read by hatch at build time and by ``reliactl --version``)."""

__version__ = "0.1.0"
