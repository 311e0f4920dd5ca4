"""The command line: every user mistake exits 2 with one line saying what to do, before any
work starts; valid values reach the commands; --help shows every default."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

import tinygrad_attn.demo.long_range
import tinygrad_attn.demo.residuals
import tinygrad_attn.report
from tinygrad_attn.__main__ import build_parser, main


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Replace the commands: record what they were given, do no work."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    for module, name in ((tinygrad_attn.demo.long_range, "demo"),
                         (tinygrad_attn.demo.residuals, "graph"),
                         (tinygrad_attn.report, "gradcheck")):
        monkeypatch.setattr(module, "main", lambda *a, _n=name: seen.append((_n, a)) or 0)
    return seen


def _mistakes(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return [
        (["demo", "--out", str(a_file)], "is a file"),
        (["demo", "--out", str(a_file / "sub")], "lies under the file"),
        (["graph", "--out", str(a_file)], "is a file"),
        (["graph", "--out", str(a_file / "sub" / "deeper")], "lies under the file"),
        (["demo", "--fast", "--steps", "-5"], r"--steps: -5 is too small; give a number >= 1"),
        (["demo", "--steps", "0"], "too small"),
        (["demo", "--steps", "many"], r"'many' is not a whole number"),
        (["demo", "--steps", "2.5"], "not a whole number"),
        (["demo", "--seed", "-1"], ">= 0"),
        (["demo", "--time-budget", "-3"], "positive, finite"),
        (["demo", "--time-budget", "inf"], "positive, finite"),
        (["demo", "--time-budget", "soon"], "not a number of seconds"),
        (["graph", "--layers", "0"], "too small"),
        (["graph", "--layers", "six"], "not a whole number"),
        (["graph", "--depth", "-1"], ">= 0"),
        (["graph", "--norm", "sideways"], "invalid choice"),
        (["gradcheck", "softmax", "no_such_op"], r"unknown op 'no_such_op'; known ops: .*add"),
        (["demo", "--unknown-flag"], "unrecognized arguments"),
        (["train"], "invalid choice"),
        ([], "required"),
    ]


def test_every_mistake_exits_2_with_one_line_and_does_no_work(
        tmp_path: Path, calls: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in _mistakes(tmp_path):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, argv
        assert err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert re.search(message, err), (argv, err)
        assert "--help" in err  # says where to look
    assert calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing created


def test_valid_arguments_reach_the_commands(tmp_path: Path, calls: list[Any]) -> None:
    out = tmp_path / "new" / "folder"  # may not exist yet: the command creates it
    assert main(["demo", "--out", str(out), "--seed", "3", "--steps", "7", "--fast",
                 "--time-budget", "1.5"]) == 0
    assert main(["graph", "--layers", "2", "--depth", "0", "--out", str(tmp_path)]) == 0
    assert main(["gradcheck", "softmax", "matmul"]) == 0
    assert main(["demo"]) == 0
    assert calls == [("demo", (str(out), 3, 7, True, 1.5)),
                     ("graph", (2, "all", 0, str(tmp_path))),
                     ("gradcheck", (["softmax", "matmul"],)),
                     ("demo", ("demo_out", 0, None, False, None))]


def test_a_failure_while_working_is_one_line_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def full_disk(*args: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tinygrad_attn.demo.long_range, "main", full_disk)
    assert main(["demo", "--fast"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err


def test_help_shows_every_default() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if action.dest == "help":
                continue
            flag = (action.option_strings or [action.metavar])[-1]
            start = text.index(flag, text.index("options:") if action.option_strings
                               else text.index("positional arguments:"))
            following = text[start:start + 220]
            assert "default" in following, (name, flag, following)
