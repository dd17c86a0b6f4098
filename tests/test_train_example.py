"""examples/train.py: one process, and two under torchrun with DistributedDataParallel (gloo, CPU)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import incdsl

pytest.importorskip("sklearn", reason="examples/train.py takes its data set from scikit-learn")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "train.py"
SPEC = "examples/mini_googlenet"


def _losses(log: str) -> list[float]:
    return [float(m[1]) for m in re.finditer(r"^step +\d+/\d+ +epoch \d+ +loss ([0-9.]+)", log, re.MULTILINE)]


def test_one_process_trains_and_saves_a_loadable_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    spec = importlib.util.spec_from_file_location("train_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, train)  # dataclasses look their module up there
    spec.loader.exec_module(train)
    ckpt = tmp_path / "mini.pt"
    result = train.main(
        ["--steps", "8", "--log-every", "4", "--eval-every", "8", "--batch-size", "32", "--save", str(ckpt)]
    )
    log = capsys.readouterr().out
    assert "aux heads: aux1 × 0.3" in log and "1 process(es)" in log and "thread(s) each" in log
    losses = _losses(log)
    assert re.search(r"^step +1/8 ", log, re.MULTILINE), "the first step is logged, so a slow run shows it runs"
    assert len(losses) == 3 and losses[0] == pytest.approx(result["first_loss"], abs=1e-4)
    assert losses[-1] == pytest.approx(result["last_loss"], abs=1e-4)
    assert result["last_loss"] < result["first_loss"]
    model = incdsl.compile(SPEC)
    model.load_state_dict(torch.load(ckpt, weights_only=True), strict=True)


def test_two_processes_under_torchrun_agree_on_the_weights_and_lower_the_loss(tmp_path: Path):
    steps = 12
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--steps",
        str(steps),
        "--log-every",
        "3",
        "--eval-every",
        str(steps),
        "--batch-size",
        "32",
        "--save",
        str(tmp_path / "ckpt-{rank}.pt"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 process(es) × batch 32 on cpu (gloo)" in done.stdout
    losses = _losses(done.stdout)
    assert len(losses) == 1 + steps // 3
    assert "1 thread(s) each (OMP_NUM_THREADS)" in done.stdout
    assert losses[-1] < 0.95 * losses[0], f"the loss did not fall: {losses}"

    weights = [torch.load(tmp_path / f"ckpt-{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    differ = [name for name in weights[0] if not torch.equal(weights[0][name], weights[1][name])]
    assert differ == [], f"ranks 0 and 1 ended with different {differ[:5]}"

    torch.manual_seed(0)  # the script's seed: the weights it started from
    start = incdsl.compile(SPEC).state_dict()
    assert not torch.equal(
        start["inception_3a.branch1.conv.weight"], weights[0]["inception_3a.branch1.conv.weight"]
    )
    incdsl.compile(SPEC).load_state_dict(weights[0], strict=True)


def test_the_thread_count_leaves_busy_cores_alone(monkeypatch: pytest.MonkeyPatch):
    """On two cores under a load of 2, two threads made 50 steps about 10x slower than one."""
    spec = importlib.util.spec_from_file_location("train_threads", SCRIPT)
    train = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, train)
    spec.loader.exec_module(train)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    for load, threads in ((0.2, 4), (2.4, 2), (3.6, 1), (9.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert train.cpu_threads(None)[0] == threads
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert train.cpu_threads(None)[0] == 2
    assert train.cpu_threads(3) == (3, "--threads")
