"""Limits that turn absurd specs into clear errors instead of hangs or huge allocations.

Each is far above any real network (the largest bundled one, Inception-ResNet-v2,
has 56M params, 20 repeats, 2,080 channels, 336 IR nodes and nesting depth 5),
and far below what would exhaust this machine. Each is checked before the thing it
bounds is built: a number when it is read, a value when it is computed, a size
when a layer's output (or its padded input) is inferred. Documented in docs/LANGUAGE.md.
"""

from __future__ import annotations

#: Characters in one spec file (the largest bundled spec has about 10,000; parsing
#: a file at this limit takes about a second).
MAX_FILE_CHARS = 1 << 17
#: Tokens (words, numbers, symbols, line ends) in one spec file: what parsing costs, where
#: characters do not (a file of `x` lines holds one token every other character). The
#: largest bundled spec has 481; at this limit loading a file takes about half a second
#: and `fmt`, which reads it and its result several times, under two.
MAX_FILE_TOKENS = 1 << 13
#: Bytes read from one file: a file over this cannot be under MAX_FILE_CHARS
#: (UTF-8 takes at most 4 bytes a character), so reading stops here.
MAX_FILE_READ = 4 * MAX_FILE_CHARS
#: Characters in all the files of one spec (the spec and everything it includes).
MAX_SOURCE_CHARS = 1 << 19
#: Distinct files included by one spec.
MAX_INCLUDED_FILES = 64
#: Nested indentation levels in a file.
MAX_INDENT_DEPTH = 32
#: Nested includes.
MAX_INCLUDE_DEPTH = 16
#: Nested block calls (a block calling a block calling ...).
MAX_CALL_DEPTH = 32
#: Copies in one `N x item`.
MAX_REPEAT = 1000
#: Nodes in the elaborated graph (about half a second of elaboration on this machine).
MAX_NODES = 10_000
#: The magnitude of any number in a spec, written or computed (`2*n`): far above any
#: channel count or paper figure, and small enough that no arithmetic on it is slow.
MAX_NUMBER = 10**12
#: Channels (or features) of any layer, and of the input.
MAX_CHANNELS = 1 << 16
#: Height or width of the input, of any layer's output or padded input, and any
#: kernel size, stride or padding.
MAX_SPATIAL = 1 << 14
#: Elements (C·H·W) of one sample's value at any layer, padded inputs included: beyond
#: this a tensor of one image needs 32-bit-overflowing indices and gigabytes of memory.
MAX_ELEMENTS = (1 << 31) - 1
#: Learnable parameters of the whole network (4 GB in fp32).
MAX_PARAMS = 1_000_000_000
