"""Run a Markdown file's code blocks in order, as a reader would, in the current folder.

``python tests/markdown_blocks.py docs/tutorial.md`` reads the file's fenced blocks:

- ``python`` blocks run one after another in one namespace (later blocks use what earlier
  ones defined, as in one Python session); a traceback names the Markdown file and line;
- ``python file=NAME`` blocks are written to NAME (a file the text asks the reader to
  save), not run;
- ``bash`` blocks run with bash, ``set -euo pipefail``, with this Python's folder first
  on PATH (``python`` is the interpreter running the blocks);
- blocks of any other language (``text`` for printed output) are shown, never run;
- a block whose info string has the word ``notest`` (a command that takes minutes, whose
  output the text shows) is skipped.

One line per block goes to stdout: where it is, what was done, how long it took. The exit
status is 1 at the first block that fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(```+)\s*([^\n`]*)$")


@dataclass
class Block:
    line: int  # the fence's first line of code, 1-based
    language: str
    options: list[str]
    code: str


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text``, in order (fences may not nest)."""
    found, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        ticks, info = match.group(1), match.group(2).split()
        end = i + 1
        while end < len(lines) and lines[end].rstrip() != ticks:
            end += 1
        if end == len(lines):
            raise ValueError(f"line {i + 1}: a code fence that is never closed")
        found.append(Block(i + 2, info[0] if info else "", info[1:],
                           "\n".join(lines[i + 1:end]) + "\n"))
        i = end + 1
    return found


def run(path: Path) -> int:
    namespace: dict[str, object] = {"__name__": "__main__"}
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    os.environ["MPLBACKEND"] = env["MPLBACKEND"]
    for block in blocks(path.read_text(encoding="utf-8")):
        where = f"{path.name}:{block.line}"
        start = time.perf_counter()
        if "notest" in block.options:
            print(f"{where} {block.language}: skipped (notest)", flush=True)
            continue
        files = [o.removeprefix("file=") for o in block.options if o.startswith("file=")]
        try:
            if block.language == "python" and files:
                Path(files[0]).write_text(block.code, encoding="utf-8")
                done = f"wrote {files[0]}"
            elif block.language == "python":
                # Blank lines in front keep the Markdown file's line numbers in tracebacks.
                code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
                exec(code, namespace)  # noqa: S102 - running the text's code is the point
                done = "ran"
            elif block.language == "bash":
                subprocess.run(["bash", "-c", "set -euo pipefail\n" + block.code], env=env,
                               check=True)
                done = "ran"
            else:
                continue
        except Exception:
            sys.stdout.flush()
            traceback.print_exc()
            print(f"FAILED: the {block.language} block at {where}", file=sys.stderr)
            return 1
        print(f"{where} {block.language}: {done} in {time.perf_counter() - start:.1f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]).resolve()))
