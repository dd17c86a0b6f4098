"""The Triton backend: fused 1×1 GEMMs, pool-fused projections and implicit-GEMM
convs writing their concat slices (``kernels.py``), run by ``module.py``."""
