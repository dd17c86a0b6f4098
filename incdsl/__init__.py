"""incdsl: Inception-family networks written the way the papers print them.

>>> import incdsl
>>> net = incdsl.loads('''
... network tiny
... input 3x32x32
... conv 3x3/2 16
... global_avgpool
... linear 10
... ''')
>>> net.node(net.logits).shape
(10, 1, 1)

``incdsl.load`` / ``incdsl.loads`` never import torch; ``incdsl.compile`` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import Span, SpecError
from .frontend import bundled_specs, load, loads
from .ir import Network, with_features

if TYPE_CHECKING:
    import torch

__all__ = ["SpecError", "Span", "Network", "load", "loads", "compile", "bundled_specs", "with_features"]
__version__ = "0.1.0"


def compile(  # noqa: A001 - the name users expect, like torch.compile
    spec: str | os.PathLike[str] | Network,
    backend: str = "torch",
    input: tuple[int, int, int] | str | None = None,  # noqa: A002
    features: Sequence[str] | None = None,
    **options: Any,
) -> torch.nn.Module:
    """Compile a spec (a path, a bundled spec's name, or a loaded network) to an ``nn.Module``.

    ``backend`` is ``"torch"`` (plain PyTorch modules) or ``"triton"`` (fused
    Triton kernels; needs a CUDA device or ``TRITON_INTERPRET=1``). With
    ``features=["Mixed_6e", "avgpool"]`` the module returns those layers' or
    blocks' outputs in a dict (computing only what they need) instead of the logits.
    """
    from .compiler.pipeline import compile_network

    network = spec if isinstance(spec, Network) else load(spec, input=input)
    if isinstance(spec, Network) and input is not None:
        raise ValueError("input= applies when loading a spec; load the network with incdsl.load(path, input=...)")
    if features is not None:
        network = with_features(network, list(features))
    return compile_network(network, backend=backend, **options)
