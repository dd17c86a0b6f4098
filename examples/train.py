"""Train an incdsl spec on scikit-learn's handwritten digits, in one process or with DDP.

    python examples/train.py                                # one process (CPU, or one GPU)
    torchrun --nproc_per_node=2 examples/train.py           # DistributedDataParallel: gloo on CPUs,
                                                            # nccl on GPUs (one process per GPU)
    python examples/train.py --spec googlenet --steps 20    # any spec: digits are resized to its input

The data set is the 1,797 8×8 digits that ship inside scikit-learn (nothing is
downloaded), upscaled to the spec's input size; 20% are held out for testing.
The model is ``incdsl.compile(spec)``; in training mode a spec with auxiliary
heads returns a ``TrainOutput`` whose ``.loss(criterion, target)`` adds each
head's loss times the weight the spec gives it. DistributedDataParallel wraps
the compiled module as it would any ``nn.Module``: incdsl needs nothing special
to scale past one process or one machine (torchrun's ``--nnodes``).

``--save ckpt.pt`` writes rank 0's ``state_dict``; a path with ``{rank}`` in it
(``--save 'ckpt-{rank}.pt'``) writes every rank's, to compare them. Load one with
``model.load_state_dict(torch.load(path, weights_only=True))``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import incdsl
from incdsl.compiler.torch.runtime import TrainOutput


@dataclass(frozen=True)
class Process:
    """Where this process sits in the run: rank 0 of 1 when not under torchrun."""

    rank: int
    world: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    @property
    def main(self) -> bool:
        return self.rank == 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", default="examples/mini_googlenet", help="a spec file or bundled spec name")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step and process (default 64)")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate of SGD with momentum 0.9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=20, metavar="N", help="log the loss every N steps")
    parser.add_argument(
        "--eval-every", type=int, default=100, metavar="N", help="test accuracy every N steps"
    )
    parser.add_argument(
        "--save", metavar="PATH", help="save the state_dict; `{rank}` in PATH saves every rank's"
    )
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is there")
    parser.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads per process (default: OMP_NUM_THREADS if set, else the cores left idle by the "
        "machine's load, shared among this machine's processes)",
    )
    return parser.parse_args(argv)


def cpu_threads(requested: int | None) -> tuple[int, str]:
    """How many threads a CPU process computes with, and why. PyTorch takes every core by
    default; on a shared machine its threads then wait on each other behind other work (50
    steps took 10x as long on two busy cores with 2 threads as with 1), so the default is the
    cores the load leaves idle, divided among the processes torchrun starts on this machine."""
    if requested is not None:
        return max(1, requested), "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = min(cores, round(os.getloadavg()[0])) if hasattr(os, "getloadavg") else 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, (cores - busy) // local), f"{cores} cores, load {busy}, {local} process(es) here"


def digits(shape: tuple[int, int, int], seed: int) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 8×8 digits as (C, H, W) images in [-1, 1]: a train and a test set."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("examples/train.py takes its data set from scikit-learn: pip install scikit-learn")
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.images, data.target, test_size=0.2, stratify=data.target, random_state=seed
    )
    c, h, w = shape

    def images(x) -> torch.Tensor:
        small = torch.as_tensor(x, dtype=torch.float32).unsqueeze(1) / 16.0
        big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return (big * 2 - 1).expand(-1, c, -1, -1)

    def labels(y) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.long)

    return TensorDataset(images(x_train), labels(y_train)), TensorDataset(images(x_test), labels(y_test))


def start(cpu: bool) -> Process:
    """Join torchrun's process group when launched by it (it sets WORLD_SIZE, RANK, LOCAL_RANK)."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available() and not cpu
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if "WORLD_SIZE" not in os.environ:
        return Process(0, 1, device)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Process(dist.get_rank(), dist.get_world_size(), device)


def mean_over_ranks(values: list[float], proc: Process) -> list[float]:
    """The mean of each value over all processes (the logged loss is the whole batch's, not rank 0's)."""
    if not proc.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=proc.device)
    dist.all_reduce(t)
    return (t / proc.world).tolist()


@torch.no_grad()
def accuracy(model: nn.Module, test: TensorDataset, proc: Process, batch_size: int = 256) -> float:
    """Accuracy on the test set; each process scores its share and the counts are summed."""
    model.eval()
    x, y = test.tensors
    x, y = x[proc.rank :: proc.world], y[proc.rank :: proc.world]
    right = sum(
        (model(x[i : i + batch_size].to(proc.device)).argmax(1).cpu() == y[i : i + batch_size]).sum().item()
        for i in range(0, len(x), batch_size)
    )
    counts = torch.tensor([right, len(x)], dtype=torch.float64, device=proc.device)
    if proc.distributed:
        dist.all_reduce(counts)
    model.train()
    return (counts[0] / counts[1]).item()


def batches(train: TensorDataset, args: argparse.Namespace, proc: Process):
    """Endless (epoch, images, labels), each process drawing its own share of every epoch."""
    sampler = DistributedSampler(train, proc.world, proc.rank, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    for epoch in range(1, sys.maxsize):
        sampler.set_epoch(epoch)
        for x, y in loader:
            yield epoch, x.to(proc.device, non_blocking=True), y.to(proc.device, non_blocking=True)


def log(proc: Process, text: str) -> None:
    if proc.main:
        print(text, flush=True)


def train(args: argparse.Namespace, proc: Process) -> dict[str, float]:
    torch.manual_seed(args.seed)
    net = incdsl.load(args.spec)
    classes = (net.node(net.logits).shape or (0,))[0]
    if classes < 10:
        sys.exit(f"{net.name} has {classes} outputs; the digits need 10 or more")
    model = incdsl.compile(net).to(proc.device)
    train_set, test_set = digits(net.input_shape, args.seed)
    raw = model
    if proc.distributed:
        model = DistributedDataParallel(
            model, device_ids=[proc.device.index] if proc.device.type == "cuda" else None
        )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / args.steps))
    )
    criterion = nn.CrossEntropyLoss()
    heads = ", ".join(f"{h.name} × {h.weight:g}" for h in net.aux) or "none"
    threads = ""
    if proc.device.type == "cpu":
        count, why = cpu_threads(args.threads)
        torch.set_num_threads(count)
        threads = f", {count} thread(s) each ({why})"
    log(
        proc,
        f"{net.name}: {sum(p.numel() for p in raw.parameters()):,} params to train, aux heads: {heads}; "
        f"{len(train_set)} train / {len(test_set)} test images at {'×'.join(map(str, net.input_shape))}; "
        f"{proc.world} process(es) × batch {args.batch_size} on {proc.device.type}"
        + (f" ({dist.get_backend()})" if proc.distributed else "") + threads,
    )

    started = time.perf_counter()
    window: list[list[float]] = []
    first_loss = last_loss = math.nan
    test_acc = math.nan
    model.train()
    for step, (epoch, x, y) in enumerate(batches(train_set, args, proc), start=1):
        out = model(x)
        loss = out.loss(criterion, y) if isinstance(out, TrainOutput) else criterion(out, y)
        logits = out.logits if isinstance(out, TrainOutput) else out
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append([loss.item(), (logits.argmax(1) == y).float().mean().item()])
        if step == 1 or step % args.log_every == 0 or step == args.steps:  # the first step shows it runs
            mean_loss, mean_acc = mean_over_ranks(
                [sum(col) / len(window) for col in zip(*window, strict=True)], proc
            )
            first_loss = mean_loss if math.isnan(first_loss) else first_loss
            last_loss = mean_loss
            window.clear()
            log(
                proc,
                f"step {step:4d}/{args.steps}  epoch {epoch}  loss {mean_loss:.4f}  "
                f"train acc {mean_acc:6.1%}  lr {schedule.get_last_lr()[0]:.4f}",
            )
        if step % args.eval_every == 0 or step == args.steps:
            test_acc = accuracy(raw, test_set, proc)
            log(proc, f"step {step:4d}/{args.steps}  test acc {test_acc:6.1%} ({len(test_set)} images)")
        if step == args.steps:
            break
    if proc.distributed:
        # DDP keeps parameters equal; batch-norm statistics are each rank's own
        # until DDP's next forward broadcasts rank 0's: do that one last time.
        for buffer in raw.buffers():
            dist.broadcast(buffer, src=0)
    seconds = time.perf_counter() - started
    log(
        proc,
        f"done: {args.steps} steps in {seconds:.1f} s; loss {first_loss:.4f} → {last_loss:.4f}, "
        f"test acc {test_acc:.1%}",
    )
    if args.save and (proc.main or "{rank}" in args.save):
        path = args.save.format(rank=proc.rank)
        torch.save(raw.state_dict(), path)
        log(proc, f"saved {path}")
    return {"first_loss": first_loss, "last_loss": last_loss, "test_accuracy": test_acc, "seconds": seconds}


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    proc = start(args.cpu)
    try:
        return train(args, proc)
    finally:
        if proc.distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
