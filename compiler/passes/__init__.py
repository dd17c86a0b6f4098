"""IR → IR passes, one per module; each is a pure function ``Network → Network``."""

from .fold_bn import fold_batch_norm
from .fuse_1x1 import fuse_parallel_1x1
from .fuse_pool import fuse_pool_into_1x1
from .fuse_residual import fuse_residual_into_1x1
from .fuse_token_mixer import fuse_token_mixers
from .plan_concat import plan_concat_buffers

__all__ = [
    "fold_batch_norm",
    "fuse_parallel_1x1",
    "fuse_pool_into_1x1",
    "fuse_residual_into_1x1",
    "fuse_token_mixers",
    "plan_concat_buffers",
]
