"""Command line: ``python -m tinygrad_attn gradcheck [OP ...]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinygrad_attn")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("gradcheck", help="check every op's backward against "
                                "finite differences and print a table")
    check.add_argument("ops", nargs="*", help="only these ops (default: all)")
    args = parser.parse_args(argv)
    if args.command == "gradcheck":
        from tinygrad_attn.report import main as report
        return report(args.ops)
    return 2


if __name__ == "__main__":
    sys.exit(main())
