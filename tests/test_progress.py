"""Progress on stderr: a spinner on a terminal, nothing elsewhere, no colour under NO_COLOR."""

from __future__ import annotations

import io

import pytest

from incdsl.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO) -> str:
    with progress("exporting googlenet", stream) as step:
        step("writing googlenet.onnx")
    return stream.getvalue()


def test_silent_when_not_a_terminal():
    assert _run(io.StringIO()) == ""


def test_a_terminal_sees_the_steps(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    shown = _run(Terminal())
    assert "writing googlenet.onnx" in shown
    assert "\x1b[3" in shown, "the spinner is coloured"


def test_no_color_leaves_out_colours(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    shown = _run(Terminal())
    assert "writing googlenet.onnx" in shown
    assert "\x1b[3" not in shown
