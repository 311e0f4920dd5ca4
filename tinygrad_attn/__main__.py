"""Command line: ``python -m tinygrad_attn gradcheck [OP ...]`` and
``python -m tinygrad_attn graph [--layers N] [--norm post|pre|none|all] [--depth D] [--out DIR]``
and ``python -m tinygrad_attn demo [--out DIR] [--seed N] [--steps N] [--fast]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinygrad_attn")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("gradcheck", help="check every op's backward against "
                                "finite differences and print a table")
    check.add_argument("ops", nargs="*", help="only these ops (default: all)")
    graph = commands.add_parser("graph", help="draw encoders' backprop graphs and chart the "
                                "gradient reaching each layer: post-norm, pre-norm, no residual")
    graph.add_argument("--layers", type=int, default=6, help="encoder layers (default 6)")
    graph.add_argument("--norm", choices=["post", "pre", "none", "all"], default="all",
                       help="whose graph to draw: post-norm, pre-norm, no residual, or all")
    graph.add_argument("--depth", type=int, default=2, help="collapse modules at this "
                       "path depth, e.g. 2 = one node per layer; 0 draws every op")
    graph.add_argument("--out", default="graph_out", help="output folder (default graph_out)")
    demo = commands.add_parser("demo", help="train a small Transformer and a vanilla RNN on "
                               "a long-range task and report what attention does")
    demo.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--steps", type=int, default=None, help="Transformer training steps "
                      "(the RNN gets 7/4 as many, about the same time)")
    demo.add_argument("--fast", action="store_true", help="a quick run with few steps")
    demo.add_argument("--time-budget", type=float, default=None,
                      help="seconds of training per model at most (default 60)")
    args = parser.parse_args(argv)
    if args.command == "gradcheck":
        from tinygrad_attn.report import main as report
        return report(args.ops)
    if args.command == "graph":
        from tinygrad_attn.demo.residuals import main as graph_main
        return graph_main(args.layers, args.norm, args.depth, args.out)
    if args.command == "demo":
        from tinygrad_attn.demo.long_range import main as demo_main
        return demo_main(args.out, args.seed, args.steps, args.fast, args.time_budget)
    return 2


if __name__ == "__main__":
    sys.exit(main())
