"""What the host hands the kernels besides activations, shared by :mod:`.gemm`,
:mod:`.conv` and the launch plan: weights packed into the kernels' ``[K, N]``
layout, per-column vectors padded to its width, and the precision of their dots.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pack_weight(weight: torch.Tensor, multiple: int = 16) -> torch.Tensor:
    """``[Cout, Cin, kh, kw]`` → the kernels' ``[kh·kw·Cin, Cout']`` (rows tap-major), with
    ``Cout`` padded by zero columns to a multiple of ``multiple``: rows of 16-byte-aligned
    length load as vectors (and through TMA). No destination takes the padding columns."""
    cout, cin, kh, kw = weight.shape
    packed = weight.permute(2, 3, 1, 0).reshape(kh * kw * cin, cout)
    return F.pad(packed, (0, -cout % multiple)).contiguous()


def pad_columns(v: torch.Tensor, n: int) -> torch.Tensor:
    """A per-column vector (bias, floor) as fp32, zero-padded to the packed weight's ``n`` columns."""
    return F.pad(v.float(), (0, n - v.shape[0]))


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot``'s input precision for ``dtype``: for fp32, TF32 exactly when torch would use
    it for a convolution here (``torch.backends.cudnn.conv.fp32_precision``, on by default);
    IEEE otherwise. 16-bit operands ignore it."""
    if dtype != torch.float32:
        return "tf32"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is None or not hasattr(conv, "fp32_precision"):  # torch before the per-operator flags
        return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
    # "none" defers to the enclosing setting: cuDNN's, then the global one.
    for setting in (conv, torch.backends.cudnn, torch.backends):
        precision = getattr(setting, "fp32_precision", "none")
        if precision != "none":
            return "tf32" if precision == "tf32" else "ieee"
    return "ieee"


def precision_of(dtype: torch.dtype) -> str:
    """The tuning's name for a dot over ``dtype`` operands: fp16, bf16, tf32 or ieee (fp32)."""
    if dtype == torch.float16:
        return "fp16"
    if dtype == torch.bfloat16:
        return "bf16"
    return dot_precision(dtype)
