"""The tutorials run as written: every code block in docs/*.md, in order, in a fresh
Python process and an empty folder, as a reader would run them (see markdown_blocks.py);
the pictures they show are committed, small, and drawn by the blocks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
RUNNER = Path(__file__).with_name("markdown_blocks.py")
sys.path.insert(0, str(RUNNER.parent))
from markdown_blocks import blocks  # noqa: E402

PICTURE = re.compile(r"!\[[^\]]*\]\((img/[^)]+)\)")


def test_both_tutorials_are_there() -> None:
    assert {d.name for d in DOCS} >= {"tutorial.md", "tutorial.zh.md"}


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_block_runs(doc: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(RUNNER), str(doc)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-4000:] + done.stderr[-8000:])
    ran = [line for line in done.stdout.splitlines() if re.match(r"\S+:\d+ \w+: ", line)]
    code = [b for b in blocks(doc.read_text(encoding="utf-8"))
            if b.language in ("python", "bash")]
    assert len(ran) == len(code) >= 15
    # Every picture the text shows is drawn by its blocks, and committed small.
    shown = PICTURE.findall(doc.read_text(encoding="utf-8"))
    assert len(shown) >= 7
    for picture in shown:
        drawn = tmp_path / "docs" / picture
        committed = ROOT / "docs" / picture
        assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
        assert committed.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", picture
        assert committed.stat().st_size <= 200_000, picture


def test_the_reader_runs_what_the_text_says(tmp_path: Path) -> None:
    text = "```python\nx = 1\n```\n\n```text\nnot run\n```\n\n```python\nassert x == 1\n" \
           "print('two')\n```\n\n```bash notest\nexit 3\n```\n\n```python file=a.py\n" \
           "raise SystemExit\n```\n\n```bash\ntest -f a.py && python -c 'print(4)'\n```\n"
    (tmp_path / "t.md").write_text(text)
    done = subprocess.run([sys.executable, str(RUNNER), "t.md"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "two\n" in done.stdout and "4\n" in done.stdout and "skipped" in done.stdout
    (tmp_path / "bad.md").write_text("```python\nx = 1\n\nraise ValueError('here')\n```\n")
    done = subprocess.run([sys.executable, str(RUNNER), "bad.md"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert 'bad.md", line 4' in done.stderr and "ValueError: here" in done.stderr


def test_public_functions_and_layers_document_their_shapes() -> None:
    import inspect

    import tinygrad_attn.factories
    import tinygrad_attn.functions
    import tinygrad_attn.nn
    import tinygrad_attn.nn.functional

    containers = {"Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"}
    missing = []
    for module in (tinygrad_attn.nn.functional, tinygrad_attn.factories,
                   tinygrad_attn.functions, tinygrad_attn.nn):
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if name.startswith("_") or name in containers | {"is_tensor"}:
                continue
            if inspect.isfunction(obj) or (inspect.isclass(obj) and module is tinygrad_attn.nn):
                if "Shape" not in (inspect.getdoc(obj) or ""):
                    missing.append(f"{module.__name__}.{name}")
    assert not missing, missing
