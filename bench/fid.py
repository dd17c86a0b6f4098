"""FID feature extraction on the CPU: incdsl's fused torch path against pytorch-fid's eager model.

    python bench/fid.py                        # batches 1 and 8, 7 runs each
    python bench/fid.py --batches 1 4 --runs 5

Both compute the four feature blocks FID reads (64, 192, 768 and 2048 channels) at
299×299 from the same (random) weights: pytorch-fid's ``InceptionV3([0, 1, 2, 3],
resize_input=False, normalize_input=False)`` built with its loader handed our
state_dict (nothing is downloaded), and ``incdsl.compile("compat/fid_inception_v3",
features=[...], fuse=True)`` in channels-last. Each figure is the median of in-process
wall times after two warm-up calls, the two models alternating so that the machine's
load falls on both alike. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import incdsl

RESULTS = Path(__file__).resolve().parent / "results"
SPEC = "compat/fid_inception_v3"
FEATURES = ["maxpool1", "maxpool2", "Mixed_6e", "avgpool"]


def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(pytorch-fid's InceptionV3 wrapper, ours fused), with the same weights, in eval mode."""
    import pytorch_fid.inception as fid

    ours = incdsl.compile(SPEC, features=FEATURES, fuse=True).eval()
    weights = ours.state_dict()
    loader, fid.load_state_dict_from_url = fid.load_state_dict_from_url, lambda *a, **k: weights
    try:
        theirs = fid.InceptionV3([0, 1, 2, 3], resize_input=False, normalize_input=False).eval()
    finally:
        fid.load_state_dict_from_url = loader
    return theirs, ours.to(memory_format=torch.channels_last)


def _seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def measure(batch: int, runs: int, theirs: torch.nn.Module, ours: torch.nn.Module) -> dict[str, float]:
    x = torch.rand(batch, 3, 299, 299) * 2 - 1
    x_last = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, got = theirs(x), ours(x_last)
        diff = max((g - e).abs().max().item() for g, e in zip(got.values(), expected, strict=True))
        for _ in range(2):
            theirs(x)
            ours(x_last)
        times: dict[str, list[float]] = {"pytorch_fid": [], "incdsl_fused": []}
        for _ in range(runs):
            times["pytorch_fid"].append(_seconds(theirs, x))
            times["incdsl_fused"].append(_seconds(ours, x_last))
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"batch": batch, **medians, "speedup": medians["pytorch_fid"] / medians["incdsl_fused"], "max_abs_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    theirs, ours = models()
    rows = [measure(b, args.runs, theirs, ours) for b in args.batches]
    print(f"FID Inception features at 299x299 on the CPU ({torch.get_num_threads()} threads), median of {args.runs}")
    print(f"{'batch':>5}  {'pytorch-fid':>12}  {'incdsl fused':>12}  {'speed-up':>8}  {'max |diff|':>10}")
    for r in rows:
        print(f"{r['batch']:>5}  {r['pytorch_fid'] * 1e3:>10.1f}ms  {r['incdsl_fused'] * 1e3:>10.1f}ms  "
              f"{r['speedup']:>7.2f}x  {r['max_abs_diff']:>10.1e}")
    stamp = datetime.date.today().isoformat()
    out = args.out or RESULTS / f"fid-{platform.machine()}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(), "date": stamp}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
