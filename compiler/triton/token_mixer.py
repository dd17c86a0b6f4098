"""InceptionNeXt's token mixer as one kernel: ``incdsl::inception_dw``.

The mixer (Yu et al., CVPR 2024; timm's ``InceptionDWConv2d``) splits the
channels of ``x`` into four consecutive parts and concatenates what becomes of
them: the first ``C − 3·gc`` channels pass unchanged, the next ``gc`` go
through a ``square``×``square`` depthwise conv, the next ``gc`` through a
1×``band`` one and the last ``gc`` through a ``band``×1 one (``gc =
int(C · branch_ratio)``, each conv "same"-padded with a bias). torch runs that
as a split, three depthwise convs and a cat; here one launch reads ``x`` (a
tap's neighbours come again through the caches, not from memory) and writes
the concatenated output once.

The kernel works on channels-last tensors: a program takes ``BLOCK_P`` pixels
× ``BLOCK_C`` consecutive channels of one part (the grid's second axis counts
the identity part's channel blocks, then each conv's), so its channels share
one tap pattern and each part's tap loop is unrolled to exactly its own taps.
Weights are packed tap-major (:func:`pack`): each tap's weights load as one
contiguous vector over the block's channels. Sums are fp32; the input, the
output and the weights may be fp16, bf16 or fp32. The operator is for
inference: it has no backward.

Compiled ahead of time for InceptionNeXt-T's stages in fp16 (``python -m
incdsl.compiler.triton.token_mixer_aot``, Triton's ptxas, no GPU; batch 1 and 32
give the same figures), none spills::

    target   C  H=W  gc  BLOCK_P×BLOCK_C  regs  shared  global loads/stores
    sm_90   96   56  12         64×16       64    2048  64-bit
    sm_90  192   28  24         32×32       44       0  128-bit
    sm_90  384   14  48         16×64       44       0  128-bit
    sm_90  768    7  96         16×64       44       0  128-bit
    sm_80   96   56  12         64×16       44    2048  64-bit
    sm_80  192–768 (as sm_90)               44       0  128-bit

At C = 96 the conv parts start at channels 60, 72 and 84 (gc = 12): 8-byte
boundaries, so 64 bits is as wide as a load or store of them can be.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..torch.fused import token_mixer
from .launch import Launch

#: InceptionNeXt's kernel sizes (timm's defaults).
SQUARE, BAND = 3, 11


@triton.jit
def _inception_dw_kernel(
    x, w, bias, out, pixels, H, W,
    C: tl.constexpr, GC: tl.constexpr, KS: tl.constexpr, KB: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    CID: tl.constexpr = C - 3 * GC
    ID_BLOCKS: tl.constexpr = (CID + BLOCK_C - 1) // BLOCK_C
    GC_BLOCKS: tl.constexpr = (GC + BLOCK_C - 1) // BLOCK_C
    pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    in_image = pix < pixels
    block = tl.program_id(1)
    if block < ID_BLOCKS:
        c = block * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = in_image[:, None] & (c < CID)[None, :]
        at = pix[:, None] * C + c[None, :]
        tl.store(out + at, tl.load(x + at, mask=mask), mask=mask)
    else:
        part = (block - ID_BLOCKS) // GC_BLOCKS  # 0 square, 1 1×KB (along W), 2 KB×1 (along H)
        cp = (block - ID_BLOCKS) % GC_BLOCKS * BLOCK_C + tl.arange(0, BLOCK_C)  # channel within the part
        c_ok = cp < GC
        c = CID + part * GC + cp
        col = pix % W
        row = pix // W % H
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
        if part == 0:
            for t in tl.static_range(KS * KS):
                dy = t // KS - KS // 2
                dx = t % KS - KS // 2
                ok = in_image & (row + dy >= 0) & (row + dy < H) & (col + dx >= 0) & (col + dx < W)
                v = tl.load(x + (pix + dy * W + dx)[:, None] * C + c[None, :], mask=ok[:, None] & c_ok[None, :], other=0.0)
                tap = tl.load(w + t * GC + cp, mask=c_ok, other=0.0)
                acc += v.to(tl.float32) * tap.to(tl.float32)[None, :]
        elif part == 1:
            for t in tl.static_range(KB):
                dx = t - KB // 2
                ok = in_image & (col + dx >= 0) & (col + dx < W)
                v = tl.load(x + (pix + dx)[:, None] * C + c[None, :], mask=ok[:, None] & c_ok[None, :], other=0.0)
                tap = tl.load(w + (KS * KS + t) * GC + cp, mask=c_ok, other=0.0)
                acc += v.to(tl.float32) * tap.to(tl.float32)[None, :]
        else:
            for t in tl.static_range(KB):
                dy = t - KB // 2
                ok = in_image & (row + dy >= 0) & (row + dy < H)
                v = tl.load(x + (pix + dy * W)[:, None] * C + c[None, :], mask=ok[:, None] & c_ok[None, :], other=0.0)
                tap = tl.load(w + (KS * KS + KB + t) * GC + cp, mask=c_ok, other=0.0)
                acc += v.to(tl.float32) * tap.to(tl.float32)[None, :]
        acc += tl.load(bias + part * GC + cp, mask=c_ok, other=0.0).to(tl.float32)[None, :]
        mask = in_image[:, None] & c_ok[None, :]
        tl.store(out + pix[:, None] * C + c[None, :], acc.to(out.dtype.element_ty), mask=mask)


def branch_channels(channels: int, branch_ratio: float = 0.125) -> int:
    """``gc``, the width of each conv part, as timm computes it (truncated, not rounded)."""
    return int(channels * branch_ratio)


def pack(
    w_square: torch.Tensor, w_w: torch.Tensor, w_h: torch.Tensor, b_square: torch.Tensor, b_w: torch.Tensor,
    b_h: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The three depthwise convs' weights (``[gc, 1, kh, kw]``, as ``nn.Conv2d`` holds them) and
    biases → the kernel's ``[square² + 2·band, gc]`` weight (rows tap-major: the square's taps
    row by row, then the 1×band's, then the band×1's) and ``[3, gc]`` bias.

    >>> w, b = pack(torch.ones(4, 1, 3, 3), torch.ones(4, 1, 1, 11), torch.ones(4, 1, 11, 1), *torch.zeros(3, 4))
    >>> tuple(w.shape), tuple(b.shape)
    ((31, 4), (3, 4))
    """
    taps = [t.reshape(t.shape[0], -1).t() for t in (w_square, w_w, w_h)]
    return torch.cat(taps).contiguous(), torch.stack((b_square, b_w, b_h)).contiguous()


def blocks(gc: int, itemsize: int) -> tuple[int, int]:
    """(BLOCK_P, BLOCK_C): channel blocks as wide as a conv part (rounded up to a power of two,
    between one 16-byte vector and 64 channels), about 1,024 elements a program: one 16-byte
    vector a thread with 4 warps (2,048 made sm_90's ptxas hold 127 registers at C = 96)."""
    block_c = min(64, max(16 // itemsize, triton.next_power_of_2(gc)))
    return max(16, 1024 // block_c), block_c


def inception_dw_launch(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor, square: int, band: int
) -> Launch:
    """The launch computing the mixer of ``x`` (``[N, C, H, W]`` channels-last) into ``out`` (the
    same shape and layout); ``weight`` and ``bias`` as :func:`pack` makes them."""
    batch, channels, height, width = x.shape
    gc = bias.shape[1]
    if weight.shape != (square * square + 2 * band, gc) or square % 2 == 0 or band % 2 == 0:
        raise ValueError(f"weight {tuple(weight.shape)} is not packed for odd kernels {square} and {band} over {gc} channels")
    if 3 * gc > channels:
        raise ValueError(f"three parts of {gc} channels do not fit in {channels}")
    if x.numel() >= 2**31:
        raise ValueError("the kernel indexes with 32-bit offsets")
    block_p, block_c = blocks(gc, x.element_size())
    pixels = batch * height * width
    parts = triton.cdiv(channels - 3 * gc, block_c) + 3 * triton.cdiv(gc, block_c)
    return Launch(
        _inception_dw_kernel,
        (triton.cdiv(pixels, block_p), parts),
        {"x": x, "w": weight, "bias": bias, "out": out, "pixels": pixels, "H": height, "W": width,
         "C": channels, "GC": gc, "KS": square, "KB": band, "BLOCK_P": block_p, "BLOCK_C": block_c},  # fmt: skip
        {"num_warps": 4, "num_stages": 1},
    )


def _channels_last_out(x: torch.Tensor) -> torch.Tensor:
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


def inception_dw(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, square: int, band: int) -> torch.Tensor:
    """The token mixer of ``x``: a new channels-last tensor of ``x``'s shape."""
    from torch.library import wrap_triton

    x = x.contiguous(memory_format=torch.channels_last)
    out = _channels_last_out(x)
    launch = inception_dw_launch(x, weight.contiguous(), bias.contiguous(), out, square, band)
    wrap_triton(launch.kernel)[launch.grid](**launch.args, **launch.options)
    return out


def inception_dw_fake(x, weight, bias, square, band):  # noqa: ANN001, ANN202
    return _channels_last_out(x)


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, square: int, band: int) -> torch.Tensor:
    """The mixer in plain torch from the packed weights (:func:`pack` undone): the torch form the
    eval program runs (:func:`~..torch.fused.token_mixer`: split, three depthwise convs, cat)."""
    gc = bias.shape[1]
    taps = torch.split(weight, (square * square, band, band))
    shapes = ((square, square), (1, band), (band, 1))
    convs = [(w.t().reshape(gc, 1, *shape), b) for w, b, shape in zip(taps, bias, shapes, strict=True)]
    return token_mixer(x, convs)


#: InceptionNeXt-T's stages: (channels, height = width) at a 224² input.
STAGES = ((96, 56), (192, 28), (384, 14), (768, 7))
