"""bench/bench.py on the CPU: one small run end to end (its JSON's structure, that the
variants compute what the reference does, that --markdown renders it and the old CPU
results), the Triton variants of each kind of group and a k×k conv in Triton's
interpreter against float64 (outputs poisoned with NaN first), the roofline's byte
count, and the budget and --resume bookkeeping. Timings are never checked."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import incdsl
from incdsl import ir
from incdsl.compiler.pipeline import inference_passes, run_passes

ROOT = Path(__file__).resolve().parent.parent
OLD_CPU_RESULTS = ROOT / "bench" / "results" / "x86-64-cpu--2-threads-2026-11-25.json"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("incdsl_bench", ROOT / "bench" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["incdsl_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> dict:
    """GoogLeNet at 3×32×32, batch 1, one short round per measurement, in a subprocess as a user runs it."""
    out = tmp_path_factory.mktemp("bench") / "run.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the shared cores: no spinning thread pools
    done = subprocess.run(
        [sys.executable, "bench/bench.py", "--nets", "googlenet", "--batches", "1", "--input", "3x32x32",
         "--rounds", "1", "--round-ms", "1", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    data["_path"] = str(out)
    return data


def test_the_json_holds_every_row_with_its_numbers(small_run):
    assert small_run["schema"] == 2
    (run,) = small_run["runs"]
    assert {"device", "date", "torch", "python", "settings", "elapsed_s"} <= run.keys()
    variants = [r["variant"] for r in small_run["networks"]]
    assert variants == ["eager (reference)", "incdsl torch", "incdsl torch --fuse"]
    for r in small_run["networks"]:
        assert r["key"] == f"networks|googlenet|float32|1|{r['variant']}" and r["run"] == 1
        assert r["ms_min"] <= r["ms"] <= r["ms_max"]
        assert r["flops"] > 0 and r["min_bytes"] > 0 and r["tflops"] > 0 and r["gbps"] > 0
        # the reference's weights, loaded: the same function up to float32 rounding
        assert r["rel_err"] < 1e-5 and r["nonfinite"] == 0
    groups = small_run["groups"]
    assert {g["kind"] for g in groups} == {"parallel 1×1", "pool (max 3×3) + 1×1"}
    for g in groups:
        assert g["m"] * g["n"] * g["k"] * 2 == g["flops"]
        assert set(g["variants"]) >= {"separate convs", "torch GEMM"}
        for v in g["variants"].values():
            assert v["rel_err"] < 1e-5 and v["nonfinite"] == 0 and v["ms"] > 0
    assert small_run["skipped"] == [] and small_run["errors"] == []


def test_markdown_renders_the_run(small_run):
    done = subprocess.run([sys.executable, "bench/bench.py", "--markdown", small_run["_path"]],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "| network | dtype | batch | eager (reference) | incdsl torch | incdsl torch --fuse |" in text
    assert "| googlenet | float32 | 1 | eager (reference) |" in text  # the detail (roofline) table
    assert text.count("| googlenet | inception") == len(small_run["groups"])


def test_markdown_renders_the_old_cpu_results_as_benchmarks_md_quotes_them(bench):
    text = bench.markdown(json.loads(OLD_CPU_RESULTS.read_text()))
    quoted = (ROOT / "BENCHMARKS.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| googlenet")]
    assert len(lines) == 2 + 18
    assert all(line in quoted for line in lines)


@pytest.mark.parametrize(
    "case",
    [
        ("parallel", dict(cin=19, h=5, w=3, widths=(5, 11, 3), relu=(True, False, True))),
        ("maxpool", dict(cin=24, h=5, w=6, widths=(8,), relu=(True,), pool=("maxpool", 3, True))),
        ("avgpool", dict(cin=24, h=4, w=4, widths=(16,), relu=(True,), pool=("avgpool", 3, False))),
        ("residual", dict(cin=20, h=3, w=5, widths=(24,), relu=(False,), residual=(0.17, True))),
    ],
    ids=lambda c: c[0],
)
def test_the_triton_variants_of_a_group_compute_it(bench, case):
    _, fields = case
    b = bench.Bench(bench.parse_args(["--triton", "--rounds", "1", "--round-ms", "1"]), _results(bench))
    c = bench.GemmCase("test", "g", **fields)
    b.measure_case("groups|test", "groups", c, 2, "float32", tuned=False)
    (row,) = b.results.data["groups"]
    expected = {"separate convs", "torch GEMM", "triton"} | ({"triton, pool then GEMM"} if c.pool else set())
    assert expected <= set(row["variants"])
    for name, v in row["variants"].items():
        assert v["nonfinite"] == 0, name  # every output element written
        assert v["rel_err"] < 1e-5, (name, v["rel_err"])


def test_a_kxk_conv_through_triton_and_cudnn(bench):
    b = bench.Bench(bench.parse_args(["--triton", "--rounds", "1", "--round-ms", "1"]), _results(bench))
    c = bench.ConvCase("test", "c", cin=5, h=9, w=7, cout=12, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
                       oh=5, ow=4, relu=True)  # fmt: skip
    b.measure_case("convs|test", "convs", c, 2, "float32", tuned=False)
    (row,) = b.results.data["convs"]
    assert set(row["variants"]) == {"cuDNN", "triton"}
    assert all(v["rel_err"] < 1e-5 and v["nonfinite"] == 0 for v in row["variants"].values())


def test_min_bytes_counts_the_weights_once_and_each_activation(bench):
    net = incdsl.load("compat/torchvision_googlenet")
    passed = run_passes(net, inference_passes("triton"))
    program = [n for n in passed.nodes if n.name in passed.ancestors(passed.logits) | {passed.logits}]
    convs = [n for n in net.nodes if isinstance(n.attrs, ir.ConvAttrs) and not net.in_aux(n)]
    weights = incdsl.cost.total(net).weights + sum(n.attrs.out_channels for n in convs) + 1000  # + biases
    assert bench.network_min_bytes(passed, 0, 2) == 2 * weights
    per_image = bench.network_min_bytes(passed, 1, 2) - 2 * weights
    assert per_image > 2 * (3 * 224 * 224 + 1000)  # at least the input and the logits
    assert bench.network_min_bytes(passed, 8, 2) - 2 * weights == 8 * per_image
    assert len(program) > 50
    g = bench.GemmCase("t", "g", cin=192, h=28, w=28, widths=(64, 96, 16), relu=(True,) * 3)
    m, n, k = 32 * 28 * 28, 176, 192
    assert g.min_bytes(32, 2) == 2 * (m * k + k * n + n + m * n) and g.flops(32) == 2 * m * n * k


def test_an_exhausted_budget_skips_with_reasons_and_resume_skips_what_was_measured(bench, small_run, tmp_path):
    args = bench.parse_args(["--nets", "googlenet", "--batches", "1", "--input", "3x32x32", "--budget", "0"])
    b = bench.Bench(args, _results(bench, tmp_path / "none.json"))
    b.execute()
    data = json.loads((tmp_path / "none.json").read_text())
    assert data["networks"] == [] and len(data["skipped"]) == 4  # three variants and the groups
    assert all(s["reason"].startswith("budget: needs ~") for s in data["skipped"])
    # Resuming the small run's file: everything there is measured, nothing runs again.
    resumed = json.loads(Path(small_run["_path"]).read_text())
    args = bench.parse_args(["--nets", "googlenet", "--batches", "1", "--input", "3x32x32"])
    b = bench.Bench(args, bench.Results(tmp_path / "again.json", {"device": "cpu", "date": "d", "torch": "t"}, resumed))
    b.execute()
    b.results.save()
    again = json.loads((tmp_path / "again.json").read_text())
    assert [r["run"] for r in again["runs"]] == [1, 2]
    assert all(r["run"] == 1 for r in again["networks"] + again["groups"])
    assert len(again["groups"]) == len(small_run["groups"])


def _results(bench, path=None):
    return bench.Results(path, {"device": "test", "date": "today", "torch": torch.__version__})


def test_errors_flag_unwritten_outputs_and_measure_in_float64(bench):
    ref = torch.ones(3, 4)
    out = ref.clone()
    out[0, 0] = math.nan
    found = bench.errors(out, ref, ref)
    assert found["nonfinite"] == 1 and math.isnan(found["rel_err"])
    found = bench.errors(torch.full((3, 4), 1 + 2**-10, dtype=torch.float16), ref, ref)
    assert found["rel_err"] == pytest.approx(2**-10) and found["max_abs_diff_vs_eager"] == pytest.approx(2**-10)


def test_tuning_a_group_times_each_candidate_and_keeps_the_fastest(bench):
    b = bench.Bench(bench.parse_args(["--triton", "--rounds", "1", "--round-ms", "1"]), _results(bench))
    c = bench.GemmCase("test", "g", cin=16, h=2, w=3, widths=(8, 8), relu=(True, True))
    b.measure_case("groups|test", "groups", c, 1, "float32", tuned=True)
    (row,) = b.results.data["groups"]
    assert row["candidates"] >= 2 and row["candidates_failed"] == 0
    assert row["variants"]["triton tuned"]["rel_err"] < 1e-5
    assert row["configs"]["triton tuned"]


def test_the_first_gpu_stage_compiles_incdsl_models_beside_the_reference(bench):
    """The decisive table's compiled rows: torch.compile of incdsl --fuse and of the triton backend's
    graph forward (default and measured forms), built on the meta device as a dry run does."""
    args = bench.parse_args(["--device", "cuda", "--dry-run", "--stage", "first", "--nets", "googlenet",
                             "--batches", "1", "--input", "3x32x32", "--skip-groups"])  # fmt: skip
    b = bench.Bench(args, None)
    items = [i for i in b.plan() if i.key.rsplit("|", 1)[1] in bench.COMPILED_INCDSL]
    assert [i.key.rsplit("|", 1)[1] for i in items] == list(bench.COMPILED_INCDSL)
    for item in items:
        item.run()
    assert b.prepared == [f"googlenet 1 {v}" for v in (bench.EAGER, *bench.COMPILED_INCDSL)]
    triton = b.states["googlenet", torch.float16].models[bench.TRITON_COMPILED]
    assert type(triton).__name__ == "TritonNetwork" and set(triton.forms.values()) == {"library"}


def test_the_second_gpu_stage_times_the_token_mixer_at_each_inception_next_stage(bench):
    args = bench.parse_args(["--device", "cuda", "--dry-run", "--stage", "second", "--nets", "googlenet",
                             "--batches", "1", "32", "256"])  # fmt: skip
    b = bench.Bench(args, None)
    items = [i for i in b.plan() if i.key.startswith("mixer|")]
    assert [i.key for i in items] == ["mixer|float16|1", "mixer|float16|32"]
    items[0].run()
    variants = ", ".join((bench.TIMM_MIXER, bench.TIMM_MIXER_COMPILED, bench.TRI))
    assert b.prepared == [f"mixer|float16|1|{c}: {variants}" for c in (96, 192, 384, 768)]


def test_a_mixer_row_measures_the_kernel_against_timm_and_renders(bench, tmp_path):
    """In Triton's interpreter at a small stage (the real ones are for a GPU)."""
    args = bench.parse_args(["--triton", "--rounds", "1", "--round-ms", "1"])
    results = bench.Results(tmp_path / "run.json", {"device": "cpu", "date": "today", "torch": torch.__version__})
    b = bench.Bench(args, results)
    b.measure_mixer("mixer|float32|2|40", 40, 6, 2, "float32")
    (row,) = results.data["mixer"]
    assert set(row["variants"]) == {bench.TIMM_MIXER, bench.TRI}
    for v in row["variants"].values():
        assert v["rel_err"] < 1e-6 and v["nonfinite"] == 0
    assert "mixer|float32|2|40" in results.done()
    v = row["variants"]
    ratio = f"{v[bench.TIMM_MIXER]['ms'] / v[bench.TRI]['ms']:.2f}×"
    (line,) = [line for line in bench.markdown(results.data).splitlines() if line.startswith("| inception_next_tiny")]
    assert line.startswith("| inception_next_tiny | C40 gc5 | 2×40×6×6 | float32 |") and ratio in line
