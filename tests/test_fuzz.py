"""Mutation fuzzing of the front end: specs made by the operators of tests/mutations.py (token
and line edits, extreme numbers, grammar fragments, chains of block calls, control characters,
format fields, options, deep nesting, includes, files at their size limit, arguments in
parentheses on built-in words, ...) either load or raise SpecError, each within 2 s of CPU; one
that loads formats (or fmt refuses it) to text that loads to the same network and formats to
itself, each fmt step within 4 s (two loads).

`make test` tries a few hundred mutants; `INCDSL_FUZZ_MUTANTS=5000 pytest tests/test_fuzz.py -s`
tries thousands (and also builds the torch module of every mutant that loads).
`python bench/fuzz.py` runs 10,000 in worker processes and reports them by outcome and operator.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest
from mutations import OPERATORS, Corpus, mutant, run_mutant

import incdsl

MUTANTS = int(os.environ.get("INCDSL_FUZZ_MUTANTS", "300"))
DEEP = "INCDSL_FUZZ_MUTANTS" in os.environ
SEED = 20261122


def test_mutants_load_or_raise_spec_errors():
    corpus = Corpus.bundled()
    outcomes: Counter[str] = Counter()
    for n in range(MUTANTS):
        path, ops, text = mutant(corpus, SEED, n)
        result = run_mutant(text, path)
        if result.failed:
            pytest.fail(f"mutant {n} of {path} ({', '.join(ops)}): {result}\n--- mutant ---\n{text}")
        outcomes[result.outcome] += 1
        if DEEP and result.outcome == "loaded":
            incdsl.compile(incdsl.loads(text, file=path))
    print(f"\nfuzz: {MUTANTS} mutants: {dict(outcomes)}")
    assert outcomes["loaded"] + outcomes["SpecError"] == MUTANTS
    assert outcomes["SpecError"] > MUTANTS // 4, "the mutations should break most specs"
    assert outcomes["loaded"] > 0, "some mutants should still load (and so reach fmt)"


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_each_operator_changes_some_spec(name):
    """An operator that never changes its input would test nothing."""
    corpus = Corpus.bundled()
    rng = random.Random(name)
    changed = sum(OPERATORS[name](text, rng, corpus) != text for _, text in corpus.sources)
    assert changed > len(corpus.sources) // 2


def test_mutants_are_the_same_on_every_run():
    """bench/fuzz.py names a failing mutant by its seed and index: that must make its text again."""
    corpus = Corpus.bundled()
    assert [mutant(corpus, SEED, n) for n in range(20)] == [mutant(corpus, SEED, n) for n in range(20)]


def test_arguments_in_parentheses_on_built_in_words_are_always_refused():
    """The `builtin_call` operator alone (`residual(scale=0.5):`, `conv(3x3, 64)`, ...) on every
    bundled spec: never loaded with the arguments dropped; refused at the `(`, unless another of
    its values (an extreme number) is refused first."""
    corpus = Corpus.bundled()
    rng = random.Random("builtin_call")
    results = [run_mutant(OPERATORS["builtin_call"](text, rng, corpus), path) for path, text in corpus.sources * 2]
    assert {r.outcome for r in results} == {"SpecError"}
    at_the_parenthesis = sum("takes nothing in parentheses" in r.detail for r in results)
    assert at_the_parenthesis > len(results) * 3 // 4
