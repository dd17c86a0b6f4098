"""Limits that turn absurd specs into clear errors instead of hangs or huge allocations.

Each is far above any real network (the largest bundled one, Inception-ResNet-v2,
has 56M params, 20 repeats, 2,080 channels, about 900 IR nodes and nesting depth 5),
and far below what would exhaust this machine. Documented in docs/LANGUAGE.md.
"""

from __future__ import annotations

#: Characters in one spec file (the largest bundled spec has about 10,000; parsing
#: a file at this limit takes about a second).
MAX_FILE_BYTES = 1 << 17
#: Nested indentation levels in a file.
MAX_INDENT_DEPTH = 32
#: Nested includes.
MAX_INCLUDE_DEPTH = 16
#: Nested block calls (a block calling a block calling ...).
MAX_CALL_DEPTH = 32
#: Copies in one `N x item`.
MAX_REPEAT = 1000
#: Nodes in the elaborated graph.
MAX_NODES = 20_000
#: Channels (or features) of any layer, and of the input.
MAX_CHANNELS = 1 << 16
#: Height or width of the input.
MAX_SPATIAL = 1 << 14
#: Learnable parameters of the whole network (4 GB in fp32).
MAX_PARAMS = 1_000_000_000
