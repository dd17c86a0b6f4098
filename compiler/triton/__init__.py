"""The Triton backend: the kernels (``gemm.py``: fused 1×1 groups and residual
expansions; ``conv.py``: pool projections and k×k convs; ``epilogue.py``: what
every kernel does with its tile), the configs they may run with
(``tuning.py``, ``targets.py``), the launch plan that replays them
(``launch.py``, ``plan.py``), the network module (``module.py``) and the
ahead-of-time check for real GPU targets (``aot.py``)."""
