"""Which config each launch runs with: candidates and defaults for every launch of the
bundled networks, the tuning cache on disk, and the runtime's choice between them."""

from __future__ import annotations

import itertools
import json
import os

import pytest
import torch

import incdsl
from incdsl.compiler.pipeline import TRITON_KERNELS, passed_for_triton
from incdsl.compiler.triton.launch import Config
from incdsl.compiler.triton.targets import TARGETS, device_named, target_of_capability
from incdsl.compiler.triton.tuning import (
    ITEMSIZE,
    RuntimeChooser,
    Shape,
    TuningCache,
    cache_dir,
    candidates,
    default_config,
    estimate_shared,
    fastest,
)


def _launch_shapes(spec: str, batch: int, precision: str) -> list[Shape]:
    """The shape of every Triton launch the spec's plan makes, as the plan builder asks the
    chooser (a plan built on the meta device: nothing runs)."""
    return [shape for shape, _ in _plan(spec, batch, precision)]


def _plan(spec: str, batch: int, precision: str) -> list[tuple[Shape, list]]:
    """Each launch shape of the spec's plan with the launches its default config makes."""
    from incdsl.compiler.triton.aot import PRECISIONS, _precision
    from incdsl.compiler.triton.module import TritonNetwork

    net = incdsl.load(spec)
    with torch.device("meta"):
        model = TritonNetwork(net, passed_for_triton(net, TRITON_KERNELS), TRITON_KERNELS).eval()
    dtype, mode = PRECISIONS[precision]
    model.to(dtype)
    shapes: list[tuple[Shape, list]] = []

    def record(shape: Shape, make, label: str) -> list:
        shapes.append((shape, make(default_config(shape, TARGETS["sm_90"]))))
        return shapes[-1][1]

    with _precision(mode), torch.no_grad():
        model._prepare()
        model.build_plan(torch.empty(batch, *net.input_shape, device="meta", dtype=dtype), record, TARGETS["sm_90"])
    return shapes


@pytest.mark.parametrize("spec", ["googlenet", "inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"])
def test_every_launch_stores_whole_sixteen_byte_vectors(spec):
    # Every destination table of the bundled networks is 16-byte aligned, stops included
    # (epilogue.store_align), so each epilogue compiles to 128-bit stores (tests/test_aot.py).
    for precision in ("fp16", "tf32"):
        for shape, launches in _plan(spec, 2, precision):
            assert all(launch.args["ALIGN"] * shape.itemsize == 16 for launch in launches), (precision, shape)


@pytest.mark.parametrize("spec", ["googlenet", "inception_v3", "inception_v4", "inception_resnet_v2"])
def test_every_launch_has_candidates_and_its_default_is_one_of_them(spec):
    for precision in ITEMSIZE:
        for batch in (1, 256):  # split-K and the smallest tiles; the largest
            shapes = _launch_shapes(spec, batch, precision)
            assert {s.precision for s in shapes} == {precision}
            for target, shape in itertools.product((TARGETS["sm_90"], TARGETS["sm_80"]), shapes):
                allowed = candidates(shape, target)
                assert allowed, shape
                assert default_config(shape, target) in allowed, shape
                assert all(estimate_shared(c, shape) <= target.max_shared for c in allowed)


def test_small_gemms_may_split_k_but_do_not_by_default():
    # GoogLeNet 5b at batch 1: a 7×7 output makes one row of tiles for 132 SMs. Split-K is a
    # candidate the tuner times; by default it is off (on an H200 the reduce launch cost more).
    shape = Shape("gemm", 49, 624, 832)
    assert any(c.split_k > 1 for c in candidates(shape, TARGETS["sm_90"]))
    assert default_config(shape, TARGETS["sm_90"]).split_k == 1
    assert not any(c.split_k > 1 for c in candidates(Shape("gemm", 256 * 784, 176, 192), TARGETS["sm_90"]))


@pytest.mark.parametrize("target", ["sm_90", "sm_80"])
def test_pool_projections_that_leave_sms_idle_split_k_by_default(target):
    # GoogLeNet at batch 1: each pool projection's tiles (7×7 to 28×28) fill few of the SMs, and
    # its K loop, nine loads per tile, is its time; the default splits K as far as the rule lets
    # it, and the plan adds the reduce launch. At batch 256 the tiles fill the GPU: no split.
    for batch, split in ((1, True), (256, False)):
        pools = [(shape, launches) for shape, launches in _plan("googlenet", batch, "fp16") if shape.kind == "pool"]
        assert pools
        for shape, _ in pools:
            config = default_config(shape, TARGETS[target])
            assert (config.split_k > 1) == split, (batch, shape)
            if split:
                tiles = -(-shape.m // config.block_m) * -(-shape.n // config.block_n)
                assert tiles * config.split_k <= TARGETS[target].sms and shape.k >= config.split_k * 2 * config.block_k
                assert config in candidates(shape, TARGETS[target])
        if target == "sm_90":  # _plan builds with sm_90's defaults
            assert all([launch.kernel.__name__ for launch in launches] == ["_conv_kernel", "_reduce_kernel"][: 1 + split]
                       for _, launches in pools)  # fmt: skip


def test_pool_projections_stay_within_two_stages_and_16_bit_hopper_tiles_within_wgmma():
    for precision in ITEMSIZE:
        shape = Shape("pool", 32 * 784, 32, 192, 9, precision)
        assert all(c.num_stages <= 2 for c in candidates(shape, TARGETS["sm_90"]))
    assert all(c.block_m >= 64 for c in candidates(Shape("gemm", 1000, 64, 64), TARGETS["sm_90"]))


def test_one_tuned_choice_serves_a_range_of_batches():
    assert Shape("gemm", 1000, 64, 64).bucket() == Shape("gemm", 1024, 64, 64).bucket()
    assert Shape("gemm", 1000, 64, 64).bucket() != Shape("gemm", 1025, 64, 64).bucket()
    assert Shape("gemm", 1000, 64, 64, 1, "tf32").bucket() != Shape("gemm", 1000, 64, 64, 1, "ieee").bucket()


def test_targets_and_devices():
    assert target_of_capability(9, 0).name == "sm_90" and target_of_capability(8, 6).name == "sm_80"
    assert device_named("NVIDIA H200").name == "H200"
    assert device_named("NVIDIA A100-SXM4-80GB").name == "A100"
    assert device_named("NVIDIA L40S") is None  # not an L4


# --- the cache on disk ------------------------------------------------------------


def test_tuned_configs_persist_across_caches(tmp_path):
    folder = tmp_path / "incdsl"
    TuningCache("NVIDIA H200", folder).put("sm_90:gemm:fp16:M64:N64:K64:T1", Config(64, 64, 32, 4, 4, split_k=2))
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    again = TuningCache("NVIDIA H200", folder)
    assert again.get("sm_90:gemm:fp16:M64:N64:K64:T1") == Config(64, 64, 32, 4, 4, split_k=2)
    assert TuningCache("NVIDIA H100 80GB HBM3", folder).get("sm_90:gemm:fp16:M64:N64:K64:T1") is None


@pytest.mark.parametrize(
    ("incdsl", "xdg", "expected"),
    [
        ("", "", "home/.cache/incdsl"),
        ("", "xdg", "xdg/incdsl"),
        (None, "", "home/.cache/incdsl"),
        ("mine", "xdg", "mine"),
    ],
)
def test_a_cache_variable_set_to_nothing_counts_as_unset(monkeypatch, tmp_path, incdsl, xdg, expected):
    """INCDSL_CACHE_DIR= must not put the cache in the working folder (``Path("")``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", xdg and str(tmp_path / xdg))
    if incdsl is None:
        monkeypatch.delenv("INCDSL_CACHE_DIR", raising=False)
    else:
        monkeypatch.setenv("INCDSL_CACHE_DIR", incdsl and str(tmp_path / incdsl))
    assert cache_dir() == tmp_path / expected


def test_a_cache_others_can_write_is_not_read(tmp_path):
    folder = tmp_path / "shared"
    cache = TuningCache("NVIDIA H200", folder)
    cache.put("key", Config(64, 64, 32, 4, 4))
    os.chmod(folder, 0o777)
    assert TuningCache("NVIDIA H200", folder).get("key") is None


def test_a_damaged_cache_file_is_ignored(tmp_path):
    cache = TuningCache("NVIDIA H200", tmp_path)
    cache.put("key", Config(64, 64, 32, 4, 4))
    cache.path.write_text("{not json")
    assert TuningCache("NVIDIA H200", tmp_path).get("key") is None
    cache.path.write_text(json.dumps({"version": 1, "entries": {"key": "64x64"}}))
    assert TuningCache("NVIDIA H200", tmp_path).get("key") is None


# --- the runtime's choice ----------------------------------------------------------


def test_the_runtime_takes_a_tuned_config_else_the_default_and_tunes_when_asked(tmp_path, monkeypatch):
    shape = Shape("gemm", 49, 624, 832)
    target = TARGETS["sm_90"]
    made: list[Config] = []

    def make(config: Config) -> list:
        made.append(config)
        return []

    cache = TuningCache("test", tmp_path)
    RuntimeChooser(target, cache)(shape, make)
    assert made[-1] == default_config(shape, target)

    timings = {c: 1.0 + i for i, c in enumerate(candidates(shape, target))}
    best = list(timings)[-1]
    timings[best] = 0.5
    monkeypatch.setattr("incdsl.compiler.triton.tuning._time", lambda launches: timings[made[-1]])
    RuntimeChooser(target, cache, tune=True)(shape, make)
    assert made[-1] == best
    made.clear()
    RuntimeChooser(target, TuningCache("test", tmp_path))(shape, make)  # a later process
    assert made == [best]


def test_the_tuner_skips_configs_that_do_not_run():
    def time_config(config: Config) -> float:
        if config.block_m == 128:
            raise RuntimeError("out of resources")
        return float(config.block_n)

    configs = [Config(128, 64, 64, 4, 4), Config(64, 128, 64, 4, 4), Config(64, 64, 64, 4, 4)]
    assert fastest(configs, time_config) == Config(64, 64, 64, 4, 4)
    with pytest.raises(RuntimeError, match="no config"):
        fastest(configs[:1], time_config)


def test_fp32_follows_torchs_tf32_setting():
    from incdsl.compiler.triton.gemm import dot_precision

    assert dot_precision(torch.float16) == "tf32"  # ignored for 16-bit operands
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    try:
        conv.fp32_precision = "ieee"
        assert dot_precision(torch.float32) == "ieee"
        conv.fp32_precision = "tf32"
        assert dot_precision(torch.float32) == "tf32"
    finally:
        conv.fp32_precision = before


def test_a_cached_config_the_pruning_rule_refuses_is_not_run(tmp_path):
    shape = Shape("gemm", 4096, 128, 256)
    target = TARGETS["sm_90"]
    cache = TuningCache("test", tmp_path)
    cache.put(f"sm_90:{shape.bucket()}", Config(128, 256, 64, 8, 3))  # spills: not a candidate
    made: list[Config] = []
    RuntimeChooser(target, cache)(shape, lambda c: made.append(c) or [])
    assert made == [default_config(shape, target)]
