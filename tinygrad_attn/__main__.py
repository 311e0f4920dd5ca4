"""Command line: ``python -m tinygrad_attn gradcheck [OP ...]`` and
``python -m tinygrad_attn graph [--layers N] [--norm post|pre|none|all] [--depth D] [--out DIR]``
and ``python -m tinygrad_attn demo [--out DIR] [--seed N] [--steps N] [--fast]``.

Every argument is checked before any work starts: a mistake (a bad number, an unknown op,
an ``--out`` that is a file or lies under one) prints one line saying what to do and exits
with status 2; ``--help`` shows every default.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from tinygrad_attn.demo import Config
from tinygrad_attn.ops.samples import SAMPLES

PROG = "python -m tinygrad_attn"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump, no traceback)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Append "(default: X)" to every option whose help does not state its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "default" in action.help:
            return action.help
        return super()._get_help_string(action)


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small; give a number >= "
                                             f"{minimum}")
        return value
    parse.__name__ = "count"  # argparse names the type in some messages
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} seconds: give a positive, finite number")
    return value


def _op_name(text: str) -> str:
    if text not in SAMPLES:
        raise argparse.ArgumentTypeError(f"unknown op {text!r}; known ops: "
                                         f"{', '.join(sorted(SAMPLES))}")
    return text


def _out_dir(text: str) -> str:
    """A folder the command can create or write into: not a file, not under a file."""
    if not text:
        raise argparse.ArgumentTypeError("give a folder name")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (created if "
                                         f"missing)")
    existing = path
    while not existing.exists():  # the nearest part of the path that is already there
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text} lies under the file {existing}; give a "
                                         f"folder path")
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {existing}; give a folder you "
                                         f"may write to")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, with validating types."""
    parser = _Parser(prog=PROG, formatter_class=_Formatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("gradcheck", formatter_class=_Formatter,
                                help="check every op's backward against finite differences "
                                "and print a table")
    check.add_argument("ops", nargs="*", type=_op_name, metavar="OP",
                       help="only these ops (default: all)")
    graph = commands.add_parser("graph", formatter_class=_Formatter,
                                help="draw encoders' backprop graphs and chart the gradient "
                                "reaching each layer: post-norm, pre-norm, no residual")
    graph.add_argument("--layers", type=_count(1), default=6, help="encoder layers")
    graph.add_argument("--norm", choices=["post", "pre", "none", "all"], default="all",
                       help="whose graph to draw: post-norm, pre-norm, no residual, or all")
    graph.add_argument("--depth", type=_count(0), default=2, help="collapse modules at this "
                       "path depth, e.g. 2 = one node per layer; 0 draws every op")
    graph.add_argument("--out", type=_out_dir, default="graph_out", help="output folder")
    demo = commands.add_parser("demo", formatter_class=_Formatter,
                               help="train a small Transformer and a vanilla RNN on a "
                               "long-range task and report what attention does")
    full, fast = Config(), Config.fast()
    demo.add_argument("--out", type=_out_dir, default="demo_out", help="output folder")
    demo.add_argument("--seed", type=_count(0), default=0, help="random seed")
    demo.add_argument("--steps", type=_count(1), default=None,
                      help=f"Transformer training steps (default: {full.steps}, or "
                      f"{fast.steps} with --fast; the RNN gets 7/4 as many, about the same "
                      f"time)")
    demo.add_argument("--fast", action="store_true", help="a quick run with few steps")
    demo.add_argument("--time-budget", type=_seconds, default=None,
                      help=f"seconds of training per model at most (default: "
                      f"{full.time_budget:g})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's), run the command, return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "gradcheck":
            from tinygrad_attn.report import main as report
            return report(args.ops)
        if args.command == "graph":
            from tinygrad_attn.demo.residuals import main as graph_main
            return graph_main(args.layers, args.norm, args.depth, args.out)
        from tinygrad_attn.demo.long_range import main as demo_main
        return demo_main(args.out, args.seed, args.steps, args.fast, args.time_budget)
    except OSError as err:  # e.g. the disk filled up, or --out changed under us
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
