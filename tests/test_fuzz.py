"""Mutation fuzzing of the front end: specs made by deleting, duplicating and swapping
tokens and lines of the bundled specs either load or raise SpecError, within 2 seconds.

`make test` tries a few hundred mutants; `INCDSL_FUZZ_MUTANTS=5000 pytest tests/test_fuzz.py -s`
tries thousands (and also builds the torch module of every mutant that loads).
"""

from __future__ import annotations

import os
import random
import re
import signal
from collections import Counter
from pathlib import Path

import pytest

import incdsl
from incdsl import SpecError, loads

SPECS = Path(__file__).resolve().parent.parent / "specs"
MUTANTS = int(os.environ.get("INCDSL_FUZZ_MUTANTS", "300"))
DEEP = "INCDSL_FUZZ_MUTANTS" in os.environ
SECONDS = 2.0
TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|->|[A-Za-z0-9_.×/]+|[^\sA-Za-z0-9_]')


class _TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise _TooSlow


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    kind = rng.choice(["del_token", "dup_token", "swap_tokens", "replace_token", "del_line", "dup_line",
                       "swap_lines", "indent", "dedent"])
    if kind in ("del_line", "dup_line", "swap_lines", "indent", "dedent") and len(lines) > 1:
        i = rng.randrange(len(lines))
        if kind == "del_line":
            del lines[i]
        elif kind == "dup_line":
            lines.insert(i, lines[i])
        elif kind == "swap_lines":
            j = min(i + 1, len(lines) - 1)
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = "  " + lines[i]
        else:
            lines[i] = lines[i][min(2, len(lines[i]) - len(lines[i].lstrip(" "))):]
        return "".join(lines)
    tokens = list(TOKEN.finditer(text))
    if not tokens:
        return text
    i = rng.randrange(len(tokens))
    start, end = tokens[i].span()
    word = tokens[i].group()
    if kind == "del_token":
        return text[:start] + text[end:]
    if kind == "dup_token":
        return text[:end] + " " + word + text[end:]
    if kind == "replace_token":
        other = rng.choice(tokens).group()
        return text[:start] + other + text[end:]
    j = min(i + 1, len(tokens) - 1)
    s2, e2 = tokens[j].span()
    if j == i:
        return text
    return text[:start] + tokens[j].group() + text[end:s2] + word + text[e2:]


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(SPECS.rglob("*.inc"))]


def test_mutants_load_or_raise_spec_errors():
    rng = random.Random(20261122)
    sources = _sources()
    outcomes: Counter[str] = Counter()
    signal.signal(signal.SIGALRM, _alarm)
    for n in range(MUTANTS):
        path, text = rng.choice(sources)
        mutant = text
        for _ in range(rng.randint(1, 3)):
            mutant = _mutate(mutant, rng)
        signal.setitimer(signal.ITIMER_REAL, SECONDS)
        try:
            net = loads(mutant, file=str(path))
            signal.setitimer(signal.ITIMER_REAL, 0)
            outcomes["loaded"] += 1
            if DEEP:
                incdsl.compile(net)
        except SpecError as err:
            err.render()
            outcomes["SpecError"] += 1
        except _TooSlow:
            pytest.fail(f"mutant {n} of {path.name} took more than {SECONDS} s:\n{mutant}")
        except Exception as err:  # noqa: BLE001 - any other exception is the bug this test looks for
            pytest.fail(f"mutant {n} of {path.name} raised {type(err).__name__}: {err}\n--- mutant ---\n{mutant}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    print(f"\nfuzz: {MUTANTS} mutants: {dict(outcomes)}")
    assert outcomes["loaded"] + outcomes["SpecError"] == MUTANTS
    assert outcomes["SpecError"] > MUTANTS // 4, "the mutations should break most specs"
