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


def _run(args: list[str], cache: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(cache)
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_cross_compiled_module_carries_kernels_its_gpu_finds(tmp_path):
    out = tmp_path / "out"
    done = _run([sys.executable, "-m", "incdsl.cli", "compile", "examples/mini_googlenet", "--backend", "triton",
                 "--target", "sm_90", "--batches", "1,2", "-o", str(out)], tmp_path / "here")  # fmt: skip
    assert "compiled" in done.stderr and "0 spilling" in done.stderr
    manifest = json.loads((out / "kernels" / "manifest.json").read_text())
    assert manifest["target"] == "sm_90" and manifest["kernels"]
    for name in manifest["kernels"]:
        assert list((out / "kernels" / name).glob("*.cubin")), name
    assert "class MiniGooglenetTriton" in (out / "mini_googlenet.py").read_text()
    # On the GPU the module's plans compile through Triton's JIT, which finds each kernel under
    # the key it computes: while the module serves them, in a private folder and not in the
    # user's (empty) cache; installed with `python -m ...precompiled`, in that cache.
    there = tmp_path / "there"
    script = f"""
import importlib.util, os, sys
from pathlib import Path
import incdsl
from incdsl.compiler.triton.aot import cross_compile
from incdsl.compiler.triton.precompiled import install, serving
from incdsl.compiler.triton.targets import TARGETS
from incdsl.compiler.pipeline import DEFAULT_TRITON_KERNELS
spec = importlib.util.spec_from_file_location("built", {str(out / "mini_googlenet.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert module.KERNELS["kernels"] == {manifest["kernels"]!r}

def compile_again(into):
    cross_compile(incdsl.load("examples/mini_googlenet"), DEFAULT_TRITON_KERNELS, TARGETS["sm_90"], [1, 2], ["fp16"],
                  Path({str(tmp_path)!r}) / into)
    there = Path({str(there)!r})
    return set(os.listdir(there) if there.exists() else ()) & set(module.KERNELS["kernels"])

if sys.argv[1] == "served":
    with serving(Path({str(out / "kernels")!r}), module.KERNELS) as served:
        assert served == {len(manifest["kernels"])} and compile_again("served") == set()
else:
    n = install(Path({str(out / "kernels")!r}))
    assert n == {len(manifest["kernels"])}, n
    before = sorted(os.listdir({str(there)!r}))
    assert compile_again("installed") == set(module.KERNELS["kernels"])
    assert sorted(os.listdir({str(there)!r})) == before, "a kernel compiled again"
"""  # fmt: skip
    _run([sys.executable, "-c", script, "served"], there)
    _run([sys.executable, "-c", script, "installed"], there)


def _largest_batch(spec: str) -> int:
    """The largest batch whose every value (N·C·H·W) 32-bit indices reach."""
    import math

    import incdsl
    from incdsl.limits import MAX_ELEMENTS

    return MAX_ELEMENTS // max(math.prod(n.shape) for n in incdsl.load(spec).nodes if n.shape)


TARGET_MISTAKES = {
    "batch 0": (["--batches", "0"], "--batches takes whole numbers from 1 to {largest:,}"),
    "batch -1": (["--batches", "-1"], "--batches takes whole numbers from 1 to {largest:,}"),
    "a batch past the indices": (["--batches", "1,{over}"], "--batches takes whole numbers from 1 to {largest:,}"),
    "a huge batch": (["--batches", "99999999999"], "--batches takes whole numbers from 1 to"),
    "no batch": (["--batches", ""], "--batches takes whole numbers"),
    "an empty target": (["--target", ""], "unknown GPU target ''"),
    "a .py output": (["-o", "{tmp}/x.py"], "names a folder for the module and its kernels, not a .py file"),
    "an empty output": (["-o", ""], "-o needs a folder name"),
    "a file output": (["-o", "{tmp}/file"], "is a file"),
    "a dangling link": (["-o", "{tmp}/dangling"], "is a symbolic link to nothing (or to itself)"),
    "a looping link": (["-o", "{tmp}/loop"], "is a symbolic link to nothing (or to itself)"),
    "a name too long": (["-o", "{tmp}/" + "d" * 300], "cannot use -o"),
}


@pytest.mark.parametrize("case", TARGET_MISTAKES)
def test_target_mistakes_are_usage_errors_before_anything_compiles(cli, tmp_path, case):
    """Each was a traceback (AssertionError, RuntimeError, CompilationError: some after every
    kernel had compiled) or was silently ignored. Under the interpreter a compile would exit 3,
    so exit 2 also shows that nothing compiled."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    largest = _largest_batch("examples/mini_googlenet")
    extra, message = TARGET_MISTAKES[case]
    args = {"--target": "sm_90", "-o": str(tmp_path / "out")}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        args[flag] = value.format(tmp=tmp_path, over=largest + 1)
    argv = ["compile", "examples/mini_googlenet", "--backend", "triton", *(x for kv in args.items() for x in kv)]
    code, _, err = cli(*argv)
    assert code == 2 and message.format(largest=largest) in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "file", "loop"]
    assert not (tmp_path / "nowhere").exists()


def test_a_network_without_triton_kernels_has_nothing_to_precompile(tmp_path):
    spec = tmp_path / "plain.inc"
    spec.write_text("network plain\ninput 3x8x8\nconv 3x3 4\nflatten\nlinear 10\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run([sys.executable, "-m", "incdsl.cli", "compile", str(spec), "--backend", "triton",
                           "--target", "sm_90", "--batches", "1", "-o", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "plain launches none of the Triton kernels" in done.stderr and "nothing to precompile for sm_90" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


_STORES = """
import json, sys
import torch, triton, triton.language as tl
from incdsl.compiler.triton.binaries import inspect, scalar_stores
from incdsl.compiler.triton.launch import compiling_for

@triton.jit
def store_columns(out_ptr, table_ptr, stride, ALIGNED: tl.constexpr):
    r = tl.arange(0, 32)
    c = tl.arange(0, 64)
    stride = tl.multiple_of(stride, 8)
    stop = tl.load(table_ptr)  # as the epilogue reads it, from its destination table
    if ALIGNED:
        stop = tl.multiple_of(stop, 8)
    tile = tl.full((32, 64), 1.0, tl.float16)
    tl.store(out_ptr + r[:, None] * stride + c[None, :], tile, mask=(c < stop)[None, :])

out = torch.empty(32, 64, dtype=torch.float16, device="meta")
table = torch.empty(1, dtype=torch.int64, device="meta")
found = {}
for aligned in (False, True):
    with compiling_for(int(sys.argv[1])):
        compiled = store_columns.warmup(out, table, 64, ALIGNED=aligned, grid=(1,), num_warps=4)
    bits = inspect(compiled.asm["cubin"]).store_bits
    found[str(aligned)] = [bits, scalar_stores(bits, 8, 2)]
print(json.dumps(found))
"""


@pytest.mark.parametrize("target", ["sm_90", "sm_80"])
def test_the_speed_lint_fails_scalar_stores_and_passes_vector_ones(tmp_path, target):
    # One masked fp16 tile store to a 16-byte-aligned destination: with the mask's bound not
    # known to be a multiple of 8 ptxas stores element by element, and the lint fails it.
    script = tmp_path / "stores.py"  # Triton reads a kernel's source from its file
    script.write_text(_STORES)
    done = _run([sys.executable, str(script), target[3:]], tmp_path / "cache")
    found = json.loads(done.stdout)
    assert found["False"] == [16, True]
    assert found["True"] == [128, False]


def test_the_group_epilogue_stores_sixteen_bytes_at_once(tmp_path):
    # GoogLeNet 3a's reductions, fp16, into slices of a 256-channel concat buffer, as the plan
    # places them: every binary of the launch (sm_90 through TMA, sm_80 through pointers).
    done = _run([sys.executable, "-c", """
import json, torch
from incdsl.compiler.triton.binaries import Check
from incdsl.compiler.triton.epilogue import destinations
from incdsl.compiler.triton.gemm import gemm_launches
from incdsl.compiler.triton.launch import Config, compiling_for
from incdsl.compiler.triton.targets import TARGETS
from incdsl.compiler.triton.tuning import Shape
m, k = 2 * 14 * 14, 192
with torch.device("meta"):
    a, b = torch.empty(m, k, dtype=torch.float16), torch.empty(k, 176, dtype=torch.float16)
    buf = torch.empty(2, 256, 14, 14, dtype=torch.float16).to(memory_format=torch.channels_last)
    bias = torch.empty(176)
dest = destinations([buf[:, :64], buf[:, 64:160], buf[:, 160:176]])
rows = []
for name in ("sm_90", "sm_80"):
    check = Check(TARGETS[name], "default")
    config = Config(64, 64, 64, 4, 3)
    shape = Shape("gemm", m, 176, k, precision="fp16")
    with compiling_for(check.target.arch):
        check.choose(shape, lambda c: gemm_launches(a, b, bias, bias, dest, config, tma=name == "sm_90"), "3a")
    rows += [[r.target, r.align, r.store_bits, r.blocks, r.problems] for r in check.rows.values()]
print(json.dumps(rows))
"""], tmp_path)  # fmt: skip
    rows = json.loads(done.stdout)
    assert {r[0] for r in rows} == {"sm_90", "sm_80"}
    for target, align, store_bits, blocks, problems in rows:
        assert (align, store_bits, problems) == (8, 128, []), (target, problems)
        assert blocks >= 1


_COUNT_PASSES = """
import sys
from incdsl import cli
from incdsl.compiler import pipeline

runs = []
fold = pipeline.fold_batch_norm  # the first pass of every run


def counted(net):
    runs.append(net.name)
    return fold(net)


counted.__name__ = fold.__name__
pipeline.fold_batch_norm = counted
code = cli.run(sys.argv[1:])
print(f"exit {code} runs {len(runs)}")
"""


@pytest.mark.parametrize(
    "extra",
    [[], ["-o", "{out}/net.py"], ["--target", "sm_90", "--batches", "1", "--kernels", "fused_1x1", "-o", "{out}"]],
    ids=["report", "module", "target"],
)
def test_compile_runs_the_passes_once(tmp_path, extra):
    args = [a.format(out=tmp_path / "out") for a in extra]
    done = _run([sys.executable, "-c", _COUNT_PASSES, "compile", "specs/examples/mini_googlenet.inc", "--backend",
                 "triton", *args], tmp_path / "cache")  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "exit 0 runs 1", done.stdout + done.stderr
