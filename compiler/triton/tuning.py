"""Which config each launch runs with: the configs each kernel may use, the
rule that prunes those that cannot fit a target, a default per shape class
(used until a shape is tuned, so a first call compiles one config and does
not time any), and tuned choices cached on disk across processes.

The pruning rule is the one the ahead-of-time check (:mod:`.aot`) holds every
kept config to: a config the rule keeps must compile within the target's
shared memory and without spills, so what runs and what was checked agree.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import triton

from .launch import Config, interpreted
from .owner import trusted
from .targets import TARGETS, Target, target_of_capability

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) per kernel kind and operand width, largest
# tiles first. Each list is what the ahead-of-time check passes on sm_90 and sm_80 for every
# launch of the bundled networks: 16-bit operands take wide K tiles; fp32 operands (TF32 or
# IEEE FMA dots) twice the bytes and registers, so half the K tile and eight warps for the
# wide tiles (four spill). 128×256 tiles spill in every width; so does a 128×64×32 k×k
# conv tile on sm_80 (on four warps; on eight in TF32 under Triton 3.8), and fp32 pool
# projections spill at BLOCK_K 16 on sm_80, and under Triton 3.6 at 64×128×32 and 64×64×32
# two stages deep (sm_80 on eight warps; IEEE on sm_90 on four): one stage fits (found by the
# full ahead-of-time check, 2026-12-04 and -05).
_SPACES: dict[tuple[str, int], list[tuple[int, int, int, int, int]]] = {
    # (64×256 tiles cover a group's columns when ΣCout ≤ 256, so each row of A is read once)
    ("gemm", 2): [
        (128, 128, 64, 8, 4), (128, 128, 64, 8, 3), (64, 256, 64, 8, 3), (64, 256, 32, 8, 4), (128, 64, 64, 4, 4),
        (64, 128, 64, 4, 4), (64, 64, 64, 4, 4), (128, 128, 32, 8, 4), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4),
        (64, 64, 32, 4, 4),
    ],
    ("gemm", 4): [
        (128, 128, 32, 8, 3), (64, 256, 32, 8, 3), (128, 64, 32, 8, 3), (64, 128, 32, 8, 3), (64, 64, 32, 4, 3),
    ],
    # k×k convs whose channels are a multiple of BLOCK_K: each K tile lies in one kernel tap
    ("conv", 2): [
        (128, 128, 64, 8, 3), (128, 128, 32, 8, 4), (128, 64, 64, 4, 3), (64, 128, 64, 4, 3), (64, 64, 64, 4, 3),
        (64, 64, 32, 4, 4), (128, 32, 64, 4, 3),
    ],
    ("conv", 4): [(128, 128, 32, 8, 3), (64, 128, 32, 8, 3), (64, 64, 32, 8, 3), (64, 32, 32, 4, 3)],
    # k×k convs whose channels are not (the stem's 3, a 5×5 over 48): each K element's tap and
    # channel are computed, so the operand's indices take registers of their own
    ("gather", 2): [(128, 64, 32, 8, 3), (64, 128, 32, 8, 3), (64, 64, 32, 4, 3), (64, 32, 32, 4, 3)],
    ("gather", 4): [(128, 64, 16, 8, 3), (64, 128, 16, 8, 3), (64, 64, 16, 4, 3), (64, 32, 32, 8, 3)],
    # pool projections: each K tile is pooled from PK² loads, at most two stages deep
    ("pool", 2): [
        (128, 128, 32, 8, 1), (128, 64, 32, 4, 1), (64, 128, 32, 4, 2), (64, 128, 32, 4, 1), (64, 64, 32, 4, 2),
        (64, 64, 32, 4, 1),
    ],
    ("pool", 4): [(128, 64, 32, 8, 2), (64, 128, 32, 8, 1), (64, 64, 32, 4, 1)],
}  # fmt: skip

KINDS = ("gemm", "conv", "pool")

#: Split-K counts tried when a GEMM's output tiles cannot fill the GPU.
SPLITS = (2, 4, 8)

#: The kernel kinds with a split-K path (:mod:`.splitk`): the 1×1 group GEMM and the pool projection.
SPLIT_KINDS = ("gemm", "pool")

#: Bytes of shared memory past the tiles (barriers, layout conversions).
_SLACK = 1024


#: Bytes per operand element for each dot precision (``ieee`` and ``tf32`` are fp32 operands).
ITEMSIZE = {"fp16": 2, "bf16": 2, "tf32": 4, "ieee": 4}


@dataclass(frozen=True)
class Shape:
    """What a launch's config depends on: the kernel kind, the GEMM sizes, the taps (a pool
    projection's pool, a k×k conv's kernel) and the dot's precision."""

    kind: str
    m: int
    n: int
    k: int
    taps: int = 1
    precision: str = "fp16"

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.precision]

    @property
    def channels(self) -> int:
        """Input channels: K per tap for a k×k conv, K otherwise."""
        return self.k // self.taps if self.kind == "conv" else self.k

    def bucket(self) -> str:
        """The tuning cache's key: M rounded up to a power of two, so one tuned choice
        serves a range of batch sizes."""
        m = triton.next_power_of_2(self.m)
        return f"{self.kind}:{self.precision}:M{m}:N{self.n}:K{self.k}:T{self.taps}"


def estimate_shared(config: Config, shape: Shape) -> int:
    """Bytes of shared memory ``config`` needs: each pipeline stage holds an A and a B tile (a
    pool projection at two stages also keeps each tap's load for the next one); after the loop,
    the epilogue converts the output tile's layout through shared memory that the pipeline's
    buffers are reused for, so the larger of the two counts (a split-K program's tile is the
    fp32 partial sum it stores)."""
    a = config.block_m * config.block_k * shape.itemsize
    b = config.block_k * config.block_n * shape.itemsize
    if shape.kind == "pool" and config.num_stages > 1:
        pipeline = (config.num_stages - 1) * (shape.taps * a + b) + 2 * a + b
    else:
        pipeline = config.num_stages * (a + b)
    epilogue = config.block_m * config.block_n * (4 if config.split_k > 1 else shape.itemsize)
    return max(pipeline, epilogue) + _SLACK


def fits(config: Config, shape: Shape, target: Target) -> bool:
    """The pruning rule: within the target's shared memory, and on Hopper wide enough for
    wgmma (a warp group's 64 rows) when the operands are 16-bit."""
    if estimate_shared(config, shape) > target.max_shared:
        return False
    return not (target.has_wgmma and shape.itemsize == 2 and config.block_m < 64)


def candidates(shape: Shape, target: Target) -> list[Config]:
    """Every config the tuner may pick for ``shape`` on ``target``, largest tiles first
    (the AOT check compiles each). A k×k conv takes the tap-per-tile configs whose
    BLOCK_K divides its channels and the gathering ones whose BLOCK_K does not."""
    width = 2 if shape.itemsize == 2 else 4
    if shape.kind == "conv":
        space = [Config(*f) for f in _SPACES["conv", width] if shape.channels % f[2] == 0]
        space += [Config(*f) for f in _SPACES["gather", width] if shape.channels % f[2] != 0]
    else:
        space = [Config(*f) for f in _SPACES[shape.kind, width]]
    if shape.kind in SPLIT_KINDS:
        space += [split for c in _split_bases(shape, space) for split in _splits(shape, c, target)]
    return [c for c in space if fits(c, shape, target)]


def _split_bases(shape: Shape, space: list[Config]) -> list[Config]:
    """The tiles split-K is tried on: the smallest of the list, then its 64×128 one."""
    smallest = min(space, key=lambda c: (c.block_m * c.block_n, c.block_k))
    bases = [smallest, next(c for c in space if (c.block_m, c.block_n) == (64, 128))]
    if shape.kind == "pool":
        # unpipelined: Triton 3.8 spills a split pool projection two stages deep on sm_80
        # (fp16 64×64 on four warps, IEEE fp32 64×64 on eight), and a split's K range is short
        bases = [replace(c, num_stages=1) for c in bases]
    return bases


def _splits(shape: Shape, config: Config, target: Target) -> list[Config]:
    """``config`` split over each count of :data:`SPLITS` that the rule finds useful, fewest first."""
    return [replace(config, split_k=s) for s in SPLITS if _split_useful(shape, config, s, target)]


def _sms(target: Target) -> int:
    return 132 if target.arch >= 90 else 108


def _tiles(shape: Shape, config: Config) -> int:
    return triton.cdiv(shape.m, config.block_m) * triton.cdiv(shape.n, config.block_n)


def _split_useful(shape: Shape, config: Config, splits: int, target: Target) -> bool:
    """Split-K helps when the tiles leave most SMs idle and each range keeps two K tiles."""
    return _tiles(shape, config) * splits <= _sms(target) and shape.k >= splits * 2 * config.block_k


def default_config(shape: Shape, target: Target) -> Config:
    """The config used before ``shape`` is tuned. On an H200 (bench/results/nvidia-h200-
    2026-11-29.json) tuning chose 64-row, four-warp tiles for nearly every group and pool
    projection of GoogLeNet at batches 1, 32 and 256 — several blocks per SM hide each one's
    short K loop and epilogue — and for a group no split-K: at batch 1 the reduce launch costs
    more than the split saves (64×64×64 without it: 5.0 µs; the split-K default: 7.9 µs). So
    the default is that tile, and a group's split-K is left to tuning.

    A pool projection whose tiles leave SMs idle splits K by default, as many ways as the rule
    allows on the smallest tile: its K loop pools PK² loads per tile and is its whole time at
    small M (H200, issue 16: 7×7 batch 1, C = 832: 26 µs; 416: 14.5; 208: 9.8 — about 1 µs per
    K tile), which dwarfs the ~3 µs a reduce launch adds. Not yet measured split on a GPU:
    tuning and the kernel-or-library choice (:mod:`.choice`) still time it."""
    allowed = candidates(shape, target)
    if shape.kind == "pool":
        whole = [c for c in allowed if c.split_k == 1]
        split = [c for c in _splits(shape, _split_bases(shape, whole)[0], target) if c in allowed]
        if split:
            return split[-1]
        preferred = Config(64, 64, 32, 4, 1)
    elif shape.kind == "gemm":
        preferred = Config(64, 64, 64, 4, 4) if shape.itemsize == 2 else Config(64, 64, 32, 4, 3)
    else:  # k×k convs (opt-in, untuned so far): the largest tile that still fills the SMs
        whole = [c for c in allowed if c.split_k == 1]
        filling = [c for c in whole if _tiles(shape, c) >= _sms(target)]
        return filling[0] if filling else max(whole, key=lambda c: (_tiles(shape, c), -c.block_m * c.block_n))
    return preferred if preferred in allowed else allowed[-1]


# --- tuned choices, on disk ----------------------------------------------------------


def cache_dir() -> Path:
    """Where tuned choices are kept: ``$INCDSL_CACHE_DIR``, else ``$XDG_CACHE_HOME/incdsl``,
    else ``~/.cache/incdsl``; a variable set to nothing counts as unset (``Path("")`` would
    be the working folder)."""
    if os.environ.get("INCDSL_CACHE_DIR"):
        return Path(os.environ["INCDSL_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "incdsl"


def _private(folder: Path) -> bool:
    """Whether only this user can write ``folder``: a tuning file elsewhere could be planted."""
    try:
        return trusted(folder.stat())
    except OSError:
        return False


class TuningCache:
    """Tuned configs for one device and Triton version, as JSON in a folder only this user can write."""

    def __init__(self, device: str, folder: Path | None = None) -> None:
        self.folder = folder or cache_dir()
        slug = "".join(ch if ch.isalnum() else "-" for ch in device).strip("-").lower()
        self.path = self.folder / f"tuned-{slug}-triton-{triton.__version__}.json"
        self.entries: dict[str, list[int]] = {}
        if self.path.exists() and _private(self.folder):
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))["entries"]
            except (OSError, ValueError, KeyError, TypeError):
                self.entries = {}  # a damaged file is retuned, not trusted

    def get(self, key: str) -> Config | None:
        fields = self.entries.get(key)
        valid = isinstance(fields, list) and len(fields) == 7 and all(type(v) is int and v > 0 for v in fields)
        return Config(*fields) if valid else None

    def put(self, key: str, config: Config) -> None:
        self.entries[key] = config.to_list()
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not _private(self.folder):
                print(f"incdsl: not saving tuned configs: {self.folder} is writable by others", file=sys.stderr)
                return
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": 1, "entries": self.entries}, indent=0), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as err:
            print(f"incdsl: could not save tuned configs to {self.path}: {err}", file=sys.stderr)


def fastest(configs: list[Config], time_config: Callable[[Config], float]) -> Config:
    """The config with the least time; a config that fails to compile or run is skipped."""
    best, best_time = None, float("inf")
    for config in configs:
        try:
            elapsed = time_config(config)
        except Exception:  # noqa: BLE001 - out of resources on this GPU: not a candidate here
            continue
        if elapsed < best_time:
            best, best_time = config, elapsed
    if best is None:
        raise RuntimeError("no config of the kernel could run on this GPU")
    return best


# --- at run time -------------------------------------------------------------------------


class RuntimeChooser:
    """Configs at run time: the tuned one for the shape's bucket, else the default for its class;
    with ``tune``, an untuned shape is tuned first (each candidate timed on the GPU) and cached."""

    def __init__(self, target: Any, cache: Any = None, tune: bool = False) -> None:
        self.target = target
        self.cache = cache
        self.tune = tune

    def __call__(self, shape: Any, make: Callable[[Any], list[Any]], label: str = "") -> list[Any]:
        key = f"{self.target.name}:{shape.bucket()}"
        config = self.cache.get(key) if self.cache is not None else None
        if config not in candidates(shape, self.target):  # only a config the AOT check's rule allows
            config = None
        if config is None and self.tune:
            config = fastest(candidates(shape, self.target), lambda c: _time(make(c)))
            self.cache.put(key, config)
        return make(config or default_config(shape, self.target))


def _time(launches: list[Any]) -> float:
    import triton.testing

    def run() -> None:
        for launch in launches:
            launch()

    return triton.testing.do_bench(run, warmup=5, rep=25, return_mode="median")


def runtime_chooser(device: torch.device, tune: bool = False) -> RuntimeChooser:
    """The config choice for launches on ``device``: its GPU's tuned configs (from the cache, or
    with ``tune`` timed there first), else the defaults; sm_90's defaults in the interpreter."""
    if interpreted() or device.type != "cuda":
        return RuntimeChooser(TARGETS["sm_90"])
    target = target_of_capability(*torch.cuda.get_device_capability(device))
    return RuntimeChooser(target, TuningCache(torch.cuda.get_device_name(device)), tune)
