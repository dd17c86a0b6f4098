"""Mutation fuzzing of the front end: specs made by the operators of tests/mutations.py (token
and line edits, extreme numbers, grammar fragments, chains of block calls, control characters,
format fields, options, deep nesting, includes, files at their size limit, NFKC twins of names,
part names, arguments in parentheses on built-in words, ...) either load or raise SpecError, each
within 2 s of CPU; one that loads formats (or fmt refuses it) to text that loads to the same
network and formats to itself, each fmt step within 4 s (two loads). Mutants of the name
operators that load also build the same modules in memory and from generated source.

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


def test_name_mutants_that_load_are_the_same_module_in_memory_and_in_the_generated_file():
    """The name operators (NFKC twins beside the names they fold to, `parts=` with torch's, Python's
    and private names) on the small GoogLeNet: a mutant that loads builds in memory and from
    `incdsl compile -o`'s source with the same state_dict keys (on the meta device: names, not
    weights, are under test). Before, `X.training` raised KeyError from add_module and `"ｃonv1"`
    beside `conv1` was one module in the generated file."""
    import ast

    import torch

    from incdsl import SpecError
    from incdsl.compiler.torch.codegen import generate

    corpus = Corpus.bundled()
    path, text = next(source for source in corpus.sources if source[0].endswith("mini_googlenet.inc"))
    outcomes: Counter[str] = Counter()
    for n in range(max(20, MUTANTS // 10)):
        rng = random.Random(f"names/{n}")
        mutated = OPERATORS[rng.choice(["unicode_twin", "part_names"])](text, rng, corpus)
        try:
            net = incdsl.loads(mutated, file=path)
        except SpecError:
            outcomes["SpecError"] += 1
            continue
        source = generate(net)
        scope: dict[str, object] = {}
        with torch.device("meta"):
            keys = list(incdsl.compile(net).state_dict())
            exec(compile(source, "generated.py", "exec"), scope)  # noqa: S102 - the file incdsl compile -o writes
            generated = scope[ast.parse(source).body[-1].name]()  # type: ignore[operator]
        assert list(generated.state_dict()) == keys, f"mutant {n}:\n{mutated}"
        assert _reached_as_written(generated), f"mutant {n}:\n{mutated}"
        outcomes["loaded"] += 1
    assert outcomes["loaded"] and outcomes["SpecError"], outcomes


def _reached_as_written(model) -> bool:
    """Whether each submodule is what Python code written with its path reaches: `model.a.b`
    where a part is an identifier, `getattr(model, "1x1")` where it is not."""
    import keyword

    for path, module in model.named_modules():
        expr = "model"
        for part in path.split(".") if path else ():
            plain = part.isidentifier() and not keyword.iskeyword(part)
            expr = f"{expr}.{part}" if plain else f"getattr({expr}, {part!r})"
        try:
            if eval(expr, {"model": model}) is not module:  # noqa: S307 - paths the spec's names made
                return False
        except AttributeError:
            return False
    return True


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_each_operator_changes_some_spec(name):
    """An operator that never changes its input would test nothing. Three tries a spec: a line
    operator picks one line, and many lines are comments that `dedent` leaves as they are."""
    corpus = Corpus.bundled()
    rng = random.Random(name)
    changed = sum(any(OPERATORS[name](text, rng, corpus) != text for _ in range(3)) for _, text in corpus.sources)
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
