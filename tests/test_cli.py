"""The `incdsl` command: check, params, ir, compile; help; exit statuses; no torch for check/params."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from incdsl import bundled_specs, load

ROOT = Path(__file__).resolve().parent.parent


def test_check_prints_a_one_screen_summary(cli):
    code, out, err = cli("check", "specs/googlenet.inc")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "googlenet: ok (specs/googlenet.inc)"
    assert "  input    3×224×224 (C×H×W)" in lines
    assert "  params   6,998,552" in lines
    assert any(line.startswith("  aux      aux1 after `inception_4a`") for line in lines)
    assert len(lines) < 25


def test_a_bundled_name_works_where_a_path_does(cli):
    by_name = cli("params", "googlenet", "--format", "json")
    by_path = cli("params", "specs/googlenet.inc", "--format", "json")
    assert by_name == by_path and by_name[0] == 0


def test_input_override(cli):
    code, out, _ = cli("params", "compat/torchvision_googlenet", "--input", "3x320x320", "--format", "json")
    assert code == 0
    assert json.loads(out)["rows"][0]["output"] == [64, 160, 160]


@pytest.mark.parametrize("value", ["3x320", "0x0x0", "garbage", "3x32x32 # c", "3x32x32x", "3x32x32/2", ""])
def test_a_bad_input_override_is_a_usage_error(cli, value):
    code, out, err = cli("check", "googlenet", "--input", value)
    assert code == 2 and out == ""
    assert f"error: argument --input: malformed input `{value}`: expected channels×height×width" in err


def test_a_missing_spec_is_a_usage_error_with_the_closest_bundled_name(cli):
    code, _, err = cli("check", "no/such/spec.inc")
    assert code == 2
    assert err.startswith("incdsl check: error: no such file or bundled spec: no/such/spec.inc")
    code, _, err = cli("params", "googlnet")
    assert code == 2 and "hint: did you mean `googlenet`?" in err


def test_a_missing_include_is_a_spec_error(cli, tmp_path: Path):
    spec = tmp_path / "s.inc"
    spec.write_text('network s\ninput 3x8x8\ninclude "nowhere.inc"\nconv 1x1 4\n', encoding="utf-8")
    code, _, err = cli("check", str(spec))
    assert code == 1 and 'cannot include "nowhere.inc": no such file' in err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["chek", "googlenet"], "did you mean `check`?"),
        (["params", "googlenet", "--formt", "json"], "did you mean `--format`?"),
        (["params", "googlenet", "--format", "jsn"], "did you mean `json`?"),
        (["compile", "googlenet", "--backend", "trition"], "did you mean `triton`?"),
        (["draw", "googlenet", "--detph", "layer"], "did you mean `--depth`?"),
    ],
)
def test_misspelt_commands_options_and_choices_get_did_you_mean(cli, argv, hint):
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and f"hint: {hint}" in err


def test_version(cli):
    from incdsl import __version__

    code, out, _ = cli("--version")
    assert code == 0 and out == f"incdsl {__version__}\n"


def test_check_reads_standard_input(cli, monkeypatch: pytest.MonkeyPatch):
    import io

    text = "network piped\ninput 3x8x8\nconv 3x3 4\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code, out, _ = cli("check", "-")
    assert code == 0 and out.startswith("piped: ok (<stdin>)")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"network piped\ninput 3x8x8\nconvv 3x3 4\n")))
    code, _, err = cli("check", "-")
    assert code == 1 and err.startswith("<stdin>:3:1: error: unknown layer type `convv`\n 3 | convv 3x3 4")


def test_an_input_written_height_width_channels_warns(cli):
    code, out, err = cli("check", "googlenet", "--input", "224x224x3")
    assert code == 1  # 224 channels of 224×3 do not survive the stem: the warning comes before the error it explains
    assert "warning: input `224x224x3` reads as 224 channels of 224×3 pixels" in err
    assert "hint: an image of 224×224 pixels with 3 channels is `3x224x224`" in err


def test_output_files_that_cannot_be_written_are_usage_errors(cli, tmp_path: Path):
    folder = tmp_path / "dir.svg"
    folder.mkdir()
    cases = [
        (["compile", "googlenet", "-o", str(tmp_path)], "is a folder; -o names the file to write"),
        (["compile", "googlenet", "-o", "/proc/version"], "cannot write /proc/version"),
        (["compile", "googlenet", "-o", ""], "-o needs a file name"),
        (["draw", "googlenet", "-o", str(folder)], "is a folder; -o names the file to write"),
        (["draw", "googlenet", "-o", ""], "-o needs a file name"),
        (["export", "googlenet", "--onnx", str(tmp_path)], "is a folder; --onnx names the file to write"),
        (["compile", "googlenet", "--kernels", "bogus"], "--kernels picks the Triton kernels: it goes with --backend triton"),
    ]
    for argv, message in cases:
        code, out, err = cli(*argv)
        assert (code, out) == (2, ""), argv
        assert message in err, (argv, err)


def test_compile_never_writes_over_its_spec(cli, tmp_path: Path):
    spec = tmp_path / "x.inc"
    text = (ROOT / "specs" / "examples" / "mini_googlenet.inc").read_text(encoding="utf-8")
    spec.write_text(text, encoding="utf-8")
    code, _, err = cli("compile", str(spec), "-o", str(spec))
    assert code == 2 and "is a file this command reads" in err
    assert spec.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("spec", ["googlenet", "inception_v4", "inception_resnet_v2"])
def test_ir_text_is_golden(cli, golden, spec):
    code, out, err = cli("ir", spec)
    assert code == 0 and err == ""
    golden(f"ir/{spec}.txt", out)


def test_ir_json_is_golden(cli, golden):
    code, out, _ = cli("ir", "examples/mini_googlenet", "--json")
    assert code == 0
    golden("ir/mini_googlenet.json", out)


def test_ir_json_is_the_whole_graph(cli):
    code, out, _ = cli("ir", "googlenet", "--json")
    data = json.loads(out)
    net = load("googlenet")
    assert [n["name"] for n in data["nodes"]] == [n.name for n in net.nodes]
    concat = next(n for n in data["nodes"] if n["name"] == "inception_3a:concat")
    assert concat["inputs"] == ["inception_3a.branch1", "inception_3a.branch2.1", "inception_3a.branch3.1",
                                "inception_3a.branch4.1"]
    assert concat["shape"] == [256, 28, 28]
    assert concat["span"]["line"] > 0 and concat["row"] is not None


def test_ir_text(cli):
    code, out, _ = cli("ir", "googlenet")
    assert code == 0
    assert "inception_3a.branch3.1 = conv(inception_3a.branch3.0) out_channels=32 kernel=(5, 5)" in out


def test_compile_writes_importable_source(cli, tmp_path: Path):
    target = tmp_path / "out" / "net.py"
    code, out, err = cli("compile", "googlenet", "--backend", "torch", "-o", str(target))
    assert code == 0 and out == ""
    assert target.exists() and f"wrote {target}" in err
    namespace: dict = {}
    exec(compile(target.read_text(), str(target), "exec"), namespace)  # our own generated code
    model = namespace["Googlenet"]().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_compile_without_output_prints_the_source(cli):
    code, out, _ = cli("compile", "googlenet")
    assert code == 0 and out.startswith('"""googlenet: generated by incdsl')


@pytest.mark.parametrize("command", [[], ["check"], ["params"], ["ir"], ["compile"]])
def test_help_is_useful_on_its_own(command, cli):
    code, out, _ = cli(*command, "--help")
    assert code == 0
    assert "usage: incdsl" in out
    if command:
        assert "bundled spec" in out
    else:
        for name in ("check", "params", "ir", "compile"):
            assert name in out


def test_no_command_is_a_usage_error(cli):
    code, _, err = cli()
    assert code == 2 and "required" in err


@pytest.mark.parametrize("command", ["check", "params"])
def test_check_and_params_never_import_torch_or_networkx(command):
    probe = (
        "import sys; from incdsl.cli import run; "
        f"code = run(['{command}', 'googlenet']); "
        "assert code == 0; assert 'torch' not in sys.modules, 'torch was imported'; "
        "assert 'networkx' not in sys.modules, 'networkx was imported (only graph algorithms need it)'"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_list_shows_every_bundled_spec(cli):
    code, out, _ = cli("list")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("googlenet ") and "7.00M params" in line and "1.58G MACs" in line for line in lines)
    assert len(lines) == len(bundled_specs())


def test_list_filters_by_pattern(cli):
    code, out, _ = cli("list", "compat/*")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == sorted(n for n in bundled_specs() if n.startswith("compat/"))


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [("nothing*", ""), ("incep", "; the pattern matches whole names: try '*incep*'"), ("", ""), ("[", "")],
)
def test_a_list_pattern_that_matches_nothing_is_an_empty_listing(cli, pattern, hint):
    """Not a spec error (1) nor a usage error (2): `find` lists nothing with status 0, so does `list`."""
    code, out, err = cli("list", pattern)
    assert (code, out) == (0, "")
    assert err == f"incdsl list: no bundled spec matches '{pattern}'{hint}\n"


@pytest.mark.parametrize("columns", ["²", "٣", "-3", "0", "eighty", "8 0", "9" * 10, "9" * 5000])
@pytest.mark.parametrize("argv", [["params"], ["params", "--layers"], ["params", "--expand"], ["check"]])
def test_a_columns_that_is_no_positive_number_is_ignored(cli, monkeypatch: pytest.MonkeyPatch, columns, argv):
    monkeypatch.delenv("COLUMNS", raising=False)
    unset = cli(*argv, "examples/mini_googlenet")
    monkeypatch.setenv("COLUMNS", columns)
    assert cli(*argv, "examples/mini_googlenet") == unset and unset[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["params", "--expand", "--layers"], "argument --layers: not allowed with argument --expand"),
        (["params", "--layers", "--expand"], "argument --expand: not allowed with argument --layers"),
    ],
)
def test_options_that_cannot_be_honoured_are_usage_errors(cli, argv, message):
    code, out, err = cli(argv[0], "examples/mini_googlenet", *argv[1:])
    assert (code, out) == (2, "") and message in err, err


LONG = "k" * 5000


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "examples/mini_googlenet", "--features", LONG],
        ["compile", "examples/mini_googlenet", "--features", "conv1," + LONG],
        ["compile", "examples/mini_googlenet", "--backend", "triton", "--kernels", LONG],
        ["draw", "examples/mini_googlenet", "--module", LONG],
        ["draw", "examples/mini_googlenet", "-o", LONG],
        ["params", "examples/mini_googlenet", "--format", LONG],
        ["check", "examples/mini_googlenet", "--input", LONG],
        ["check", "examples/mini_googlenet", f"--{LONG}"],
        ["check", LONG],
        [LONG],
    ],
)
def test_a_value_echoed_in_a_usage_error_is_cut_short(cli, argv):
    code, out, err = cli(*argv)
    assert (code, out) == (2, "")
    assert "k" * 50 + "…" in err and "k" * 61 not in err and len(err) < 600, err


def test_triton_report_is_what_the_triton_backend_prints(cli):
    """--report asks for the compile report instead of the source: the triton backend's stdout is that report."""
    pytest.importorskip("triton")
    plain = cli("compile", "examples/mini_googlenet", "--backend", "triton")
    assert plain[0] == 0 and "passes:" in plain[1]
    assert cli("compile", "examples/mini_googlenet", "--backend", "triton", "--report") == plain
