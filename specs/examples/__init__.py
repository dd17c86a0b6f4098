"""Small specs for examples and tests (``examples/mini_googlenet``: digits at 32×32)."""
