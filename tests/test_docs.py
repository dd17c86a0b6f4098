"""The docs cannot drift: every example spec in docs/LANGUAGE.md loads and compiles, and every
command, output excerpt and Python snippet in README.md and docs/CLI.md is run or checked.

How README.md and docs/CLI.md are read (HTML comments are the only marks; readers see none):

- A ```sh block holds commands, one a line; ``# …`` is a comment, and a line that is only a
  comment continues the one above. ``[A | B]`` shows optional alternatives: the command is run
  without them and with each (``[--json]`` is one alternative).
- In any other block, a line ``$ COMMAND`` is a command and the lines after it, up to the next
  ``$`` line or the block's end, are an excerpt of what it prints: its stdout, then its stderr.
  Each shown line is a whole output line (trailing spaces aside), in order; a line that is only
  ``…`` (indentation aside) stands for any number of lines, and the next shown line matches the
  first output line equal to it. Without a ``…`` at either end, the excerpt starts (ends) where
  the output does. No lines after a ``$`` line: the output is not shown, only the status checked.
- ``<!-- output of: COMMAND -->`` before a ```json block: the block is the layout of
  COMMAND's JSON, with ``// comments`` and ``...`` for what it leaves out. Each object lists
  exactly the keys the output's objects have there (all elements of a list together), or at
  least them when it has a ``...`` entry; a key whose comment starts with ``only`` may be
  absent; each number, and each string without ``...``, equals the output's value (the first
  list element that has the key).
- ``<!-- synopsis -->`` before a block: one line per command (an indented line continues
  it), which must show every subcommand and every option of the argument parser and no others.
- An inline code span starting with ``incdsl `` (up to a ``|``) runs when it is a whole command
  without placeholders in capitals; otherwise (``incdsl params --format json`` in a heading) its
  subcommand and options must exist. One starting with ``make``, ``pytest``, ``python``,
  ``torchrun`` or ``bash`` is checked as ``parse_only`` says.
- README's table of figures: where a row's "how" is an ``incdsl`` command ("same" repeats the
  row above's), each count with thousands separators and each "N.NN G MACs" in its figure is in
  that command's output.
- A ```python block runs as a script (its names are checked to be defined first); the
  statements from the first one that says ``cuda`` on run only where a GPU is.

Every ``incdsl`` command runs in process (``--target`` in a process of its own) in a fresh folder
holding ``specs`` (a user's checkout) and the files in ``FILES``, and must exit 0; one shown in
several places runs once. What is checked short of running, and why, is in ``parse_only``: make
targets are looked up in the Makefile, the training script's commands go through its argument
parser, and the rest (pictures without Graphviz's ``dot``, backends whose package is missing)
through incdsl's, so a renamed option fails everywhere.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import incdsl
from incdsl import cli

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "LANGUAGE.md"
EXAMPLES = re.findall(r"```inc\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_reference_has_examples():
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize("text", EXAMPLES, ids=[re.search(r"network (\w+)", t).group(1) for t in EXAMPLES])
def test_example_loads_and_runs(text):
    net = incdsl.loads(text, file="LANGUAGE.md")
    model = incdsl.compile(net).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *net.input_shape))
    assert tuple(out.shape[1:]) == net.node(net.logits).shape[: out.dim() - 1]


# --- README.md and docs/CLI.md ---------------------------------------------------------------

DOCS = ("README.md", "docs/CLI.md")
FILES = {"my.inc": "specs/examples/mini_googlenet.inc"}  # files the commands name, from bundled specs
ELIDED = "…"


@dataclass(frozen=True)
class Block:
    """A fenced code block: where its first line is, its language, the HTML comment before it."""

    doc: str
    line: int
    lang: str
    mark: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """A command the docs show, at ``doc:line``, with the output excerpt shown after it, if any."""

    doc: str
    line: int
    text: str
    excerpt: tuple[tuple[int, str], ...] | None = None  # (doc line, shown line)
    inline: bool = False

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def blocks(doc: str) -> list[Block]:
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"```(\w*)$", lines[i])
        if not fence:
            i += 1
            continue
        end = lines.index("```", i + 1)
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mark = re.fullmatch(r"<!--\s*(.*?)\s*-->", before.strip())
        found.append(
            Block(doc, i + 2, fence.group(1), mark.group(1) if mark else "", tuple(lines[i + 1 : end]))
        )
        i = end + 1
    return found


def _variants(text: str) -> list[str]:
    """``cmd [A | B] rest`` → ``cmd rest``, ``cmd A rest``, ``cmd B rest`` (each group in turn)."""
    group = re.search(r"\[([^\]]*)\]", text)
    if not group:
        return [" ".join(text.split())]
    head, tail = text[: group.start()], text[group.end() :]
    options = ["", *(a.strip() for a in group.group(1).split("|"))]
    return [v for option in options for v in _variants(f"{head} {option} {tail}")]


def shell_commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    for n, line in enumerate(block.lines, block.line):
        text = re.sub(r"(^|\s)#\s.*", "", line).strip()
        if text:
            commands += [Command(block.doc, n, v) for v in _variants(text)]
    return commands


def prompted_commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    for n, line in enumerate(block.lines, block.line):
        if line.startswith("$ "):
            commands.append(Command(block.doc, n, line[2:].strip(), ()))
        elif commands:
            last = commands[-1]
            commands[-1] = Command(last.doc, last.line, last.text, (*last.excerpt, (n, line.rstrip())))
    return commands


def inline_commands(doc: str) -> list[Command]:
    text = (ROOT / doc).read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    return [
        Command(
            doc, text.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split(" | ")[0].split()), inline=True
        )
        for m in re.finditer(r"`((?:incdsl|make|pytest|python|torchrun|bash) [^`]+)`", text)
    ]


def doc_commands() -> list[Command]:
    commands: list[Command] = []
    for doc in DOCS:
        for block in blocks(doc):
            if block.lang == "sh":
                commands += shell_commands(block)
            elif block.lang != "python" and block.mark != "synopsis":
                commands += prompted_commands(block)
        commands += inline_commands(doc)
    return commands


COMMANDS = doc_commands()


def parse_only(command: Command) -> str | None:
    """Why this command is only parsed here, or None: it runs."""
    words = shlex.split(command.text)
    if words[0] == "make":
        return "a make target (it sets up .venv or runs the whole suite): looked up in the Makefile"
    if "examples/train.py" in words:
        return (
            "trains for a minute (tests/test_train_example.py trains): the training script parses its options"
        )
    if words[0] != "incdsl":
        return (
            "a test run, a benchmark or a launcher: the files it names exist, its options are in its script"
        )
    if command.inline and (any(w.isupper() for w in words) or _parse_error(words)):
        return "named in prose, not a whole command: its subcommand and options must exist"
    if (
        words[1] == "draw"
        and Path(_option(words, "-o") or "x.dot").suffix != ".dot"
        and not shutil.which("dot")
    ):
        return "renders with Graphviz's dot, which is not installed here (CI installs it)"
    needs = "triton" if "triton" in words else "onnxscript" if words[1] == "export" else None
    if needs and importlib.util.find_spec(needs) is None:
        return f"needs the {needs} package, which is not installed here"
    return None


def _parse_error(words: list[str]) -> str | None:
    """What incdsl's argument parser says about ``incdsl …``, or None when it takes it."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            cli._parser().parse_args(words[1:])  # noqa: SLF001
    except SystemExit:
        return said.getvalue().strip().splitlines()[-1] if said.getvalue().strip() else "exit 2"
    return None


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def test_every_block_of_commands_is_read():
    for doc in DOCS:
        for block in blocks(doc):
            shows_commands = any(line.startswith("incdsl ") for line in block.lines)
            read = (
                block.lang == "sh"
                or block.mark == "synopsis"
                or any(line.startswith("$ ") for line in block.lines)
            )
            assert read or not shows_commands, (
                f"{doc}:{block.line}: commands in a block tests/test_docs.py does not read"
            )


def _excerpt_mismatch(excerpt: tuple[tuple[int, str], ...], output: str) -> str | None:
    """Where the excerpt and the output part (see the module's docstring), or None."""
    real = [line.rstrip() for line in output.splitlines()]
    at, skipping = 0, False
    for n, shown in excerpt:
        if shown.strip() == ELIDED:
            skipping = True
            continue
        if skipping:
            at = next((i for i in range(at, len(real)) if real[i] == shown), None)
            if at is None:
                return f"line {n}: no output line after the last one matched is\n    {shown}"
        elif at >= len(real) or real[at] != shown:
            got = real[at] if at < len(real) else "(the output has ended)"
            return f"line {n} shows\n    {shown}\nwhere the output has\n    {got}"
        at, skipping = at + 1, False
    if not skipping and at < len(real):
        return f"the excerpt ends at line {excerpt[-1][0]} where the output goes on with\n    {real[at]}"
    return None


@pytest.fixture
def in_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    for name, source in FILES.items():
        shutil.copy(ROOT / source, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def triton_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("triton-cache")


def _run(words: list[str], capsys: pytest.CaptureFixture[str], triton_cache: Path) -> tuple[int, str, str]:
    """Run ``incdsl …`` in process: (exit status, stdout, stderr). A ``--target`` build runs in a
    process of its own, without the TRITON_INTERPRET that conftest.py sets for the kernels here
    (kernels defined under the interpreter cannot be compiled for a GPU)."""
    if "--target" in words:
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {
            "TRITON_CACHE_DIR": str(triton_cache)
        }
        done = subprocess.run(
            [sys.executable, "-m", "incdsl.cli", *words[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return done.returncode, done.stdout, done.stderr
    try:
        code = cli.run(words[1:])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


RUN: dict[str, list[Command]] = {}  # a command shown in several places runs once
for _command in COMMANDS:
    if parse_only(_command) is None:
        RUN.setdefault(_command.text, []).append(_command)
PARSED = [c for c in COMMANDS if parse_only(c) is not None]


@pytest.mark.parametrize("shown", RUN.values(), ids=lambda shown: str(shown[0]))
def test_a_documented_command_runs_and_prints_what_the_docs_show(shown, in_a_checkout, capsys, triton_cache):
    code, out, err = _run(shlex.split(shown[0].text), capsys, triton_cache)
    assert code == 0, f"{', '.join(c.where for c in shown)}: {shown[0].text}\nexited {code}; stderr:\n{err}"
    for command in shown:
        mismatch = _excerpt_mismatch(command.excerpt, out + err) if command.excerpt else None
        assert mismatch is None, f"{command}\n{command.doc} {mismatch}\nthe whole output:\n{out}{err}"


@pytest.mark.parametrize("command", PARSED, ids=str)
def test_a_documented_command_that_cannot_run_here_parses(command):
    words = shlex.split(command.text)
    if words[0] == "make":
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        assert re.search(rf"^{re.escape(words[1])}:", makefile, flags=re.M), f"{command}: no such make target"
        return
    if "examples/train.py" in words:
        from examples.train import parse_args

        script = words.index("examples/train.py")
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                parse_args(words[script + 1 :])
        except SystemExit:
            pytest.fail(f"{command}\nis not accepted by examples/train.py's argument parser")
        return
    if words[0] != "incdsl":
        _check_named_files(command, words)
        return
    if command.inline:
        parser = _subparsers().get(words[1])
        assert parser is not None, f"{command}: incdsl has no command {words[1]!r}"
        unknown = [w for w in words[2:] if w.startswith("-") and w.split("=")[0] not in _options(parser)]
        assert not unknown, f"{command}: incdsl {words[1]} has no option {', '.join(unknown)}"
        return
    error = _parse_error(words)
    assert error is None, f"{command}\nis not accepted by incdsl's argument parser: {error}"


def _check_named_files(command: Command, words: list[str]) -> None:
    """``pytest FILE -k EXPR``, ``python SCRIPT --option``, ``bash SCRIPT``: the files exist, each
    word of ``-k`` is in a test's name there, and each option is one the script spells out."""
    if words[0] == "python" and words[1:2] == ["-m"]:
        # `python -m incdsl.X.Y`: the module's file under the folders pyproject maps into incdsl
        parts = words[2].split(".")
        top = {"compiler": "compiler", "grammars": "grammars", "specs": "specs"}.get(parts[1], "incdsl")
        rest = parts[2:] if top != "incdsl" else parts[1:]
        words = [words[0], str(Path(top, *rest).with_suffix(".py")), *words[3:]]
    files = [ROOT / w for w in words[1:] if "/" in w and not w.startswith("-")]
    if words[0] == "torchrun" and not files:
        return  # torchrun's own options, named in prose
    assert files and all(f.exists() for f in files), f"{command}: names a file the repository does not have"
    source = files[0].read_text(encoding="utf-8")
    if words[0] == "pytest" and "-k" in words:
        names = " ".join(re.findall(r"def (test_\w+)", source))
        wanted = [w for w in re.findall(r"\w+", _option(words, "-k")) if w not in ("and", "or", "not")]
        assert all(w in names for w in wanted), f"{command}: no test in {files[0].name} is named like that"
    if words[0] == "python":
        unknown = [w for w in words[2:] if w.startswith("--") and f'"{w}"' not in source]
        assert not unknown, f"{command}: {files[0].name} has no option {', '.join(unknown)}"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli._parser()  # noqa: SLF001
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}  # noqa: SLF001


def test_the_synopsis_shows_every_command_and_option_and_no_others():
    (block,) = [b for b in blocks("docs/CLI.md") if b.mark == "synopsis"]
    shown: dict[str, str] = {}
    for line in block.lines:
        if line.startswith("incdsl "):
            command = line.split()[1]
            shown[command if not command.startswith("-") else ""] = line
        else:
            shown[command] += line
    parsers = _subparsers()
    assert set(shown) - {""} == set(parsers), (
        f"docs/CLI.md:{block.line}: the synopsis's commands are not incdsl's"
    )
    assert set(re.findall(r"--?[a-z][\w-]*", shown[""])) == _options(cli._parser()) - {"-h", "--help"}  # noqa: SLF001
    for command, parser in parsers.items():
        named = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", shown[command]))
        # --include-path is said once, under the synopsis, for every command that reads a spec
        actions = [a.option_strings for a in parser._actions if a.option_strings]  # noqa: SLF001
        actions = [a for a in actions if not {"-h", "--include-path"} & set(a)]
        options = {a[-1] for a in actions if named & set(a)} | (named - {o for a in actions for o in a})
        expected = {a[-1] for a in actions}
        assert options == expected, (
            f"docs/CLI.md, the synopsis of `incdsl {command}`: shows {sorted(options - expected)} "
            f"that it does not take, leaves out {sorted(expected - options)}"
        )
        for action in parser._actions:  # noqa: SLF001
            if action.choices and action.option_strings:
                shown_choices = re.search(rf"{action.option_strings[-1]} ([\w|]+)", shown[command]).group(1)
                assert shown_choices.split("|") == list(action.choices), (
                    f"docs/CLI.md: `incdsl {command}`'s choices"
                )


# --- JSON layouts -----------------------------------------------------------------------------

JSON_BLOCKS = [b for doc in DOCS for b in blocks(doc) if b.mark.startswith("output of:")]
OPTIONAL = "\u2026optional"  # a key whose comment starts with "only"


def lenient_json(lines: tuple[str, ...]) -> object:
    """The documented layout as a value: ``// only …`` keys named optional, ``...`` entries kept as "…"."""
    tokens, stack = [], []
    token = re.compile(r'"(?:\\.|[^"\\])*"|//.*|\.\.\.|[{}\[\],:]|[^\s{}\[\],:]+')
    for line in lines:
        line_start = len(tokens)
        for t in token.findall(line):
            if t.startswith("//"):
                if t[2:].strip().startswith("only"):  # every key on this line
                    for i in range(line_start, len(tokens)):
                        if tokens[i] == ":":
                            tokens[i - 1] = json.dumps(OPTIONAL + json.loads(tokens[i - 1]))
                continue
            if t in "{[":
                stack.append(t)
            elif t in "}]":
                stack.pop()
            tokens.append(('"\u2026": null' if stack[-1] == "{" else '"\u2026"') if t == "..." else t)
    return json.loads(" ".join(tokens))


def _layout_mismatches(doc: object, real: object, path: str) -> list[str]:
    if isinstance(doc, list) and not any(isinstance(d, (dict, list)) for d in doc):
        shown = doc[:-1] if doc and doc[-1] in (ELIDED, "...") else doc  # a list that goes on
        if (
            not isinstance(real, list)
            or real[: len(shown)] != shown
            or (shown is doc and len(real) != len(doc))
        ):
            return [f"{path}: the docs show {doc!r}, the output has {real!r}"]
        return []
    if isinstance(doc, list):
        elements = real if isinstance(real, list) else []
        return [m for d in doc if d != ELIDED for m in _layout_mismatches(d, elements, path + "[]")]
    if isinstance(doc, dict) and doc:
        objects = [o for o in (real if isinstance(real, list) else [real]) if isinstance(o, dict)]
        keys = {k.removeprefix(OPTIONAL): k for k in doc if k != ELIDED}
        there = {k for o in objects for k in o}
        found = [
            f"{path}: the docs show {k!r}, the output has no such key"
            for k, d in keys.items()
            if k not in there and not d.startswith(OPTIONAL)
        ]
        if ELIDED not in doc:
            found += [
                f"{path}: the output has {k!r}, the docs do not show it" for k in sorted(there - set(keys))
            ]
        for k, d in keys.items():
            values = [o[k] for o in objects if k in o]
            if values:
                inner = values if isinstance(doc[d], dict) else values[0]
                found += _layout_mismatches(doc[d], inner, f"{path}.{k}")
        return found
    shown = isinstance(doc, (int, float)) or (isinstance(doc, str) and "..." not in doc and doc != ELIDED)
    return [f"{path}: the docs show {doc!r}, the output has {real!r}"] if shown and doc != real else []


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=lambda b: f"{b.doc}:{b.line}")
def test_a_documented_json_layout_is_the_outputs(block, in_a_checkout, capsys):
    words = shlex.split(block.mark.removeprefix("output of:"))
    assert cli.run(words[1:]) == 0
    mismatches = _layout_mismatches(lenient_json(block.lines), json.loads(capsys.readouterr().out), "")
    assert not mismatches, f"{block.doc}:{block.line}, the layout of `{' '.join(words)}`:\n" + "\n".join(
        mismatches
    )


# --- Python -----------------------------------------------------------------------------------

SNIPPETS = [b for doc in DOCS for b in blocks(doc) if b.lang == "python"]


def _undefined_names(tree: ast.Module) -> set[str]:
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - bound - set(dir(builtins))


@pytest.mark.parametrize("block", SNIPPETS, ids=lambda b: f"{b.doc}:{b.line}")
def test_a_python_snippet_runs(block, in_a_checkout):
    source = "\n" * (block.line - 1) + "\n".join(block.lines)  # tracebacks name the doc's lines
    tree = ast.parse(source, filename=block.doc)
    assert not _undefined_names(tree), (
        f"{block.doc}:{block.line}: names never defined: {_undefined_names(tree)}"
    )
    gpu = next((i for i, s in enumerate(tree.body) if "cuda" in ast.unparse(s)), len(tree.body))
    if torch.cuda.is_available():
        gpu = len(tree.body)
    runnable = ast.Module(body=tree.body[:gpu], type_ignores=[])
    exec(compile(runnable, block.doc, "exec"), {"__name__": "__readme__"})  # noqa: S102


# --- README's table of figures ----------------------------------------------------------------


def figures() -> list[tuple[int, str, str]]:
    """README's "What we measured" rows whose "how" is an incdsl command: (line, figures, command).
    "same" repeats the row above's command; "same, `NAME`" runs it on the spec NAME."""
    rows, command = [], None
    for n, line in enumerate((ROOT / "README.md").read_text(encoding="utf-8").splitlines(), 1):
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) != 3 or not line.startswith("| "):
            continue
        how = cells[2]
        same = re.fullmatch(r"same(?:, `(\w+)`)?.*", how)
        if same and command:
            command = command if not same.group(1) else " ".join([*command.split()[:2], same.group(1)])
        else:
            found = re.search(r"`(incdsl [^`]+)`", how)
            command = found.group(1) if found else None
        if command and _figures_in(cells[1]):
            rows.append((n, cells[1], command))
    return rows


def _figures_in(cell: str) -> list[str]:
    """The patterns of a cell's counts with thousands separators and its "N.NN G MACs"."""
    counts = re.findall(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])", cell)
    return [re.escape(c) for c in counts] + [re.escape(g) + " ?G" for g in re.findall(r"(\d+\.\d+) G MACs", cell)]


FIGURES = figures()


def test_the_table_of_figures_has_commands():
    assert len(FIGURES) >= 6


@pytest.mark.parametrize("line,figure,command", FIGURES, ids=[f"README.md:{n}" for n, _, _ in FIGURES])
def test_a_figure_in_the_readme_is_what_its_command_prints(line, figure, command, in_a_checkout, capsys):
    """Each count with thousands separators, and each "N.NN G MACs", is in the command's output."""
    code, out, err = _run(shlex.split(command), capsys, Path())
    assert code == 0, f"README.md:{line}: {command} exited {code}: {err}"
    missing = [f.replace("\\", "").replace(" ?G", " G") for f in _figures_in(figure) if not re.search(f, out)]
    assert not missing, f"README.md:{line}: `{command}` does not print {', '.join(missing)}:\n{out}"
