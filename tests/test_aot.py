"""The ahead-of-time check on a representative subset: one launch of each kernel
variant the bundled networks use (fused groups, pool projections, residual
expansions, split-K and its reduce, k×k convs), in each precision, compiled for
sm_90 and sm_80 with Triton's compiler and ptxas, within each target's limits.
``make gpu-check`` runs the whole set (every network, batch and config)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("aot")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(out / "cache")  # compile for real, not from an earlier run's cache
    done = subprocess.run(
        [sys.executable, "-m", "incdsl.compiler.triton.aot", "--subset", "--quiet", "--batches", "1",
         "--nets", "googlenet,inception_resnet_v2", "--json", str(out / "aot.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "aot.json").read_text())


def test_every_binary_fits_its_target(subset):
    assert {r["target"] for r in subset["rows"]} == {"sm_90", "sm_80"}
    failing = [r for r in subset["rows"] if r["problems"]]
    assert not failing, failing
    for r in subset["rows"]:
        assert r["shared"] <= {"sm_90": 232_448, "sm_80": 166_912}[r["target"]]
        assert r["stack"] == 0


def test_the_subset_covers_each_kernel_in_each_precision(subset):
    seen = {(r["target"], r["kernel"], r["variant"].split()[0]) for r in subset["rows"]}
    for target in ("sm_90", "sm_80"):
        for kernel in ("gemm", "pool", "conv", "reduce"):
            for precision in ("fp16", "bf16", "tf32", "ieee"):
                assert (target, kernel, precision) in seen
    residual = {r["variant"].split()[0] for r in subset["rows"] if r["kernel"] == "gemm" and "residual" in r["variant"]}
    assert residual == {"fp16", "bf16", "tf32", "ieee"}


def test_hopper_gemms_use_wgmma_and_the_copy_engine(subset):
    hopper = [r for r in subset["rows"] if r["target"] == "sm_90" and r["kernel"] == "gemm"]
    assert all(r["wgmma"] for r in hopper if not r["variant"].startswith("ieee"))
    assert any(r["tma"] for r in hopper) and not any(r["tma"] for r in hopper if r["variant"].startswith("ieee"))
    ampere = [r for r in subset["rows"] if r["target"] == "sm_80" and r["kernel"] != "reduce"]
    assert all(r["mma"] and not r["wgmma"] for r in ampere if not r["variant"].startswith("ieee"))
