"""Passes over the IR and the backends: importable as ``incdsl.compiler``."""
