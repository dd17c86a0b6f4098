"""How long the front end takes: whole processes, as a user meets them.

    python bench/frontend.py                   # every bundled spec, 5 runs each
    python bench/frontend.py --runs 9 --specs googlenet inception_v4

Measures, each as the median of fresh processes (CPU = user + sys of the child,
from ``os.wait4``):

* ``incdsl check SPEC`` and ``incdsl params SPEC`` for every bundled spec
  (targets: at most 0.25 s of CPU each);
* ``incdsl.compile("inception_resnet_v2")`` in a process that has already
  imported incdsl, torch and the compiler (target: at most 0.5 s);
* what each import costs (``python -X importtime``): by package, for what
  ``incdsl check`` loads and for what ``incdsl.compile`` loads (with torch).

Prints a table and writes JSON to bench/results/ (``--out`` to choose the file).
The machine's load moves these figures: compare within one run, quote medians.
Every process runs as an installed package does, from bytecode (pip writes it on
install; the uncounted first run writes it here), whatever PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
CHECK_LIMIT_S = 0.25
COMPILE_LIMIT_S = 0.5
COMPILE_SPEC = "inception_resnet_v2"
#: The environment of every measured process: bytecode written and read, as installed packages have it.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: Packages shown one per line in the import table; the rest are summed.
SHOWN = 14
_COMPILE_PROBE = """
import json, time
import incdsl, torch, incdsl.compiler.pipeline
cpu, wall = time.process_time(), time.perf_counter()
incdsl.compile({spec!r})
print(json.dumps({{"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}}))
"""


def timed(argv: list[str], runs: int) -> dict[str, float]:
    """Median CPU and wall seconds of ``runs`` fresh processes (after one not counted)."""
    cpu, wall = [], []
    for i in range(runs + 1):
        c, w = _spawn(argv)
        if i:
            cpu.append(c)
            wall.append(w)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall), "cpu_max": max(cpu)}


def _spawn(argv: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, ENV, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime, wall


def compile_after_imports(runs: int) -> dict[str, float]:
    """CPU and wall seconds of ``incdsl.compile`` alone, medians over fresh processes."""
    cpu, wall = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _COMPILE_PROBE.format(spec=COMPILE_SPEC)],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout)
        cpu.append(figures["cpu"])
        wall.append(figures["wall"])
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall), "cpu_max": max(cpu)}


def import_costs(statement: str, runs: int) -> dict[str, float]:
    """Median milliseconds of what ``statement`` imports, by package (the sum of its modules'
    own times, whoever imported them first), with incdsl's modules one by one."""
    samples: dict[str, list[float]] = {}
    line = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
        by_group: dict[str, float] = {}
        for own, name in line.findall(done.stderr):
            group = name if name.startswith("incdsl") else name.split(".")[0]
            by_group[group] = by_group.get(group, 0.0) + int(own) / 1000
        by_group["(all)"] = sum(by_group.values())
        for group, ms in by_group.items():
            samples.setdefault(group, []).append(ms)
    medians = {group: statistics.median(ms + [0.0] * (runs - len(ms))) for group, ms in samples.items()}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def bundled() -> list[str]:
    done = subprocess.run([sys.executable, "-c", "import incdsl; print('\\n'.join(incdsl.bundled_specs()))"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
    return done.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure (default 5)")
    parser.add_argument("--specs", nargs="+", help="bundled spec names (default: all)")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/frontend-MACHINE-DATE.json)")
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("incdsl"))
    specs = args.specs or bundled()

    load_before = os.getloadavg()[0]
    startup = timed([sys.executable, "-c", "pass"], args.runs)
    commands = {}
    for spec in specs:
        for command in ("check", "params"):
            commands[f"{command} {spec}"] = timed([cli, command, spec], args.runs)
    compiled = compile_after_imports(args.runs)
    imports = {
        "import incdsl.cli": import_costs("import incdsl.cli", args.runs),
        "import incdsl.compiler.torch.lower": import_costs("import incdsl.compiler.torch.lower", args.runs),
    }

    load = (load_before, os.getloadavg()[0])
    print(f"python startup (python -c pass): {startup['cpu']:.3f} s CPU; load average {load[0]:.1f} → {load[1]:.1f} "
          f"on {os.cpu_count()} CPUs (other work on the machine inflates every figure)")
    print(f"\n{'command (whole process)':<44} {'CPU s':>7} {'wall s':>7}   (target ≤ {CHECK_LIMIT_S} s CPU)")
    for name, figures in commands.items():
        flag = "" if figures["cpu"] <= CHECK_LIMIT_S else "  over"
        print(f"incdsl {name:<37} {figures['cpu']:7.3f} {figures['wall']:7.3f}{flag}")
    flag = "" if compiled["cpu"] <= COMPILE_LIMIT_S else "  over"
    print(f"\nincdsl.compile({COMPILE_SPEC!r}) after imports: {compiled['cpu']:.3f} s CPU, "
          f"{compiled['wall']:.3f} s wall (target ≤ {COMPILE_LIMIT_S} s){flag}")
    for statement, costs in imports.items():
        print(f"\n{statement} (python -X importtime, median ms by package):")
        shown = list(costs.items())[: SHOWN + 1]  # "(all)" comes first
        for group, ms in shown:
            print(f"  {group:<36} {ms:7.1f}")
        print(f"  {f'({len(costs) - len(shown)} more)':<36} {sum(costs.values()) - sum(ms for _, ms in shown):7.1f}")

    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runs": args.runs,
        "load_average": load,
        "startup": startup,
        "commands": commands,
        "compile_after_imports": {"spec": COMPILE_SPEC, **compiled},
        "imports": imports,
    }
    out = args.out or RESULTS / f"frontend-{platform.machine()}-{results['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
