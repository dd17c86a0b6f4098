"""Mutation fuzzing of the front end at scale: N mutants of the bundled specs, each loaded (and,
when it loads, formatted and checked) in a worker process within a CPU-time limit.

    python bench/fuzz.py                        # 10,000 mutants, seed 20261122, one worker a CPU
    python bench/fuzz.py --mutants 500 --jobs 1
    python bench/fuzz.py --seed 7 --only 4242   # one mutant again: prints its text and result

The mutants are tests/mutations.py's (tests/test_fuzz.py runs a few hundred of the same):
mutant i of a seed has the same text on every run. A mutant passes when it loads or raises
SpecError, within 2 s of CPU (``time.process_time``, so that other work on the machine does
not count; wall time is reported beside it), and, if it loads, fmt refuses it or gives text
that loads to the same network and formats to itself, each fmt step within 4 s of CPU (fmt
loads the text and its result to compare them: two loads at least). Each runs under SIGPROF at the limit; a
worker that does not answer within ``--hang`` wall seconds (stuck in C code, say) is killed
and the mutant counted as a hang, so nothing a mutant does stops the run.

Prints counts by outcome, by SpecError message, by operator, and the slowest mutants; writes
JSON to bench/results/ (``--out``) and every failing mutant's text to ``--failures``; exits 1
if any mutant failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from collections import Counter, defaultdict
from multiprocessing.connection import Connection, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT / "tests"))

from mutations import FMT_SECONDS, SECONDS, Corpus, Result, mutant, run_mutant  # noqa: E402

SEED = 20261122
SLOWEST = 10
#: Memory one worker may add to what it holds when it starts: a mutant that needs more is a bug.
WORKER_MEMORY = 2 << 30


def _worker(conn: Connection, parent: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + WORKER_MEMORY, hard))
    while True:
        while not conn.poll(1.0):
            if os.getppid() != parent:  # the run was stopped: no one will send more
                return
        job = conn.recv()
        if job is None:
            return
        index, path, text = job
        conn.send((index, run_mutant(text, path)))


class _Pool:
    """Workers forked from this process (the corpus and incdsl already imported), one mutant each at a time."""

    def __init__(self, jobs: int) -> None:
        self.context = multiprocessing.get_context("fork")
        self.workers: dict[Connection, tuple[multiprocessing.Process, tuple | None, float]] = {}
        for _ in range(jobs):
            self._start()

    def _start(self) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, os.getpid()), daemon=True)
        process.start()
        child.close()
        self.workers[parent] = (process, None, 0.0)

    def run(self, jobs, hang: float):
        """Yield (job, Result) for every job; a worker over ``hang`` wall seconds is replaced."""
        pending = iter(jobs)
        busy = 0
        for conn in list(self.workers):
            busy += self._feed(conn, pending)
        while busy:
            ready = wait(list(self.workers), timeout=1.0)
            for conn in ready:
                process, job, _ = self.workers[conn]
                try:
                    index, result = conn.recv()
                except EOFError:  # the worker died (a signal, the memory limit in C code)
                    result = Result("error", f"worker died (exit {process.join(1) or process.exitcode})")
                    del self.workers[conn]
                    self._start()
                    conn = list(self.workers)[-1]
                busy -= 1
                yield job, result
                busy += self._feed(conn, pending)
            now = time.perf_counter()
            for conn, (process, job, started) in list(self.workers.items()):
                if job is not None and now - started > hang:
                    process.kill()
                    process.join()
                    del self.workers[conn]
                    self._start()
                    busy -= 1
                    yield job, Result("hang", f"no answer after {hang:.0f} s wall", wall=now - started)
                    busy += self._feed(list(self.workers)[-1], pending)

    def _feed(self, conn: Connection, pending) -> int:
        process, _, _ = self.workers[conn]
        job = next(pending, None)
        self.workers[conn] = (process, job, time.perf_counter())
        if job is None:
            return 0
        conn.send(job)
        return 1

    def close(self) -> None:
        for conn, (process, _, _) in self.workers.items():
            conn.send(None)
            process.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutants", type=int, default=10_000, help="how many (default 10,000)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: one a CPU)")
    parser.add_argument("--hang", type=float, default=30.0, help="wall seconds before a worker is killed (default 30)")
    parser.add_argument("--only", type=int, help="run this one mutant in this process and print it")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/fuzz-MACHINE-DATE.json)")
    parser.add_argument("--failures", type=Path, default=ROOT / "build" / "fuzz-failures.txt",
                        help="where failing mutants' texts go (default build/fuzz-failures.txt)")
    args = parser.parse_args()
    corpus = Corpus.bundled()

    if args.only is not None:
        path, ops, text = mutant(corpus, args.seed, args.only)
        print(f"mutant {args.only} of seed {args.seed}: {path} with {', '.join(ops)}\n{text}")
        print(run_mutant(text, path))
        return 0

    outcomes: Counter[str] = Counter()
    fmt: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    by_op: dict[str, Counter[str]] = defaultdict(Counter)
    records: list[dict] = []
    failures: list[tuple[int, str, list[str], str, Result]] = []
    load_before, start = os.getloadavg()[0], time.perf_counter()
    pool = _Pool(args.jobs)
    try:
        info: dict[int, list[str]] = {}
        for (index, path, text), result in pool.run(_jobs(corpus, args.seed, args.mutants, info), args.hang):
            ops = info.pop(index)
            outcomes[result.outcome] += 1
            if result.fmt:
                fmt[result.fmt] += 1
            if result.outcome == "SpecError":
                messages[result.detail] += 1
            for op in set(ops):
                by_op[op][result.outcome] += 1
                by_op[op]["failed"] += result.failed
            records.append({"index": index, "spec": Path(path).name, "ops": ops, "outcome": result.outcome,
                            "cpu": result.cpu, "wall": result.wall, "fmt": result.fmt, "fmt_cpu": result.fmt_cpu})
            if result.failed:
                failures.append((index, path, ops, text, result))
            done = len(records)
            if done % 1000 == 0:
                print(f"  {done:,} mutants, {len(failures)} failed, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    finally:
        pool.close()
    total = time.perf_counter() - start
    load = (load_before, os.getloadavg()[0])

    print(f"{args.mutants:,} mutants of seed {args.seed} in {total:.0f} s with {args.jobs} workers "
          f"(load average {load[0]:.1f} → {load[1]:.1f} on {os.cpu_count()} CPUs)")
    print(f"\n{'outcome':<12} {'mutants':>8}")
    for name, count in outcomes.most_common():
        print(f"{name:<12} {count:8,}")
    print(f"\nfmt of the {outcomes['loaded']:,} that loaded: " + ", ".join(f"{k} {v:,}" for k, v in fmt.most_common()))
    print(f"\n{'SpecError message (numbers and quoted text as N and `…`)':<92} {'mutants':>8}")
    for message, count in messages.most_common(25):
        print(f"{message:<92} {count:8,}")
    print(f"({len(messages)} messages in all)")
    print(f"\n{'operator':<18} {'used':>6} {'loaded':>7} {'SpecError':>9} {'failed':>7}")
    for op, counts in sorted(by_op.items()):
        used = sum(v for k, v in counts.items() if k != "failed")
        print(f"{op:<18} {used:6,} {counts['loaded']:7,} {counts['SpecError']:9,} {counts['failed']:7,}")
    slowest = sorted(records, key=lambda r: -max(r["cpu"], r["fmt_cpu"]))[:SLOWEST]
    print(f"\nslowest (limits {SECONDS} s CPU for load, {FMT_SECONDS} s for each fmt step)\n{'mutant':>7} {'spec':<28} "
          f"{'load CPU':>8} {'wall':>6} {'fmt CPU':>7}  operators")
    for r in slowest:
        print(f"{r['index']:7} {r['spec']:<28} {r['cpu']:8.3f} {r['wall']:6.3f} {r['fmt_cpu']:7.3f}  {', '.join(r['ops'])}")

    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "command": " ".join(["python", "bench/fuzz.py", *sys.argv[1:]]),
        "mutants": args.mutants,
        "seed": args.seed,
        "jobs": args.jobs,
        "limit_cpu_s": SECONDS,
        "fmt_limit_cpu_s": FMT_SECONDS,
        "seconds": total,
        "load_average": load,
        "outcomes": dict(outcomes),
        "fmt": dict(fmt),
        "spec_errors": dict(messages.most_common()),
        "operators": {op: dict(c) for op, c in sorted(by_op.items())},
        "max_cpu": max((r["cpu"] for r in records), default=0.0),
        "max_wall": max((r["wall"] for r in records), default=0.0),
        "max_fmt_cpu": max((r["fmt_cpu"] for r in records), default=0.0),
        "slowest": slowest,
        "failures": [{"index": i, "spec": Path(p).name, "ops": o, "outcome": r.outcome, "detail": r.detail,
                      "fmt": r.fmt, "fmt_detail": r.fmt_detail} for i, p, o, _, r in failures],
    }
    out = args.out or RESULTS / f"fuzz-{platform.machine()}-{results['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    if failures:
        args.failures.parent.mkdir(parents=True, exist_ok=True)
        with args.failures.open("w", encoding="utf-8") as f:
            for index, path, ops, text, result in failures:
                f.write(f"=== mutant {index} of seed {args.seed}: {path} with {', '.join(ops)}\n{result}\n{text}\n")
        print(f"\n{len(failures)} mutants failed (texts in {args.failures}; "
              f"`python bench/fuzz.py --seed {args.seed} --only N` runs one again):")
        for index, path, ops, _, result in failures[:20]:
            print(f"  {index}: {Path(path).name} with {', '.join(ops)}: {result.outcome} {result.detail} "
                  f"{result.fmt} {result.fmt_detail}".rstrip())
        return 1
    return 0


def _jobs(corpus: Corpus, seed: int, count: int, ops: dict[int, list[str]]):
    """(index, spec, text) of each mutant, keeping its operators by index for the report."""
    for index in range(count):
        path, ops[index], text = mutant(corpus, seed, index)
        yield index, path, text


if __name__ == "__main__":
    sys.exit(main())
