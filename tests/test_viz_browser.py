"""The backward stepper's page in a real headless Chromium: it loads without console
errors, the arrow keys and the buttons step forward and back, and the frames it shows
are free of grey wedges, with the highlighted node on screen.

Needs the `playwright` Python package (the `dev` extra) and a Chromium binary
(`apt-get install chromium`; scripts/test.sh installs it where it can)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn, ops, viz

playwright = pytest.importorskip("playwright.sync_api",
                                 reason="the playwright package is not installed "
                                        "(pip install -e '.[dev]')")


def _chromium() -> str | None:
    for name in (os.environ.get("TINYGRAD_ATTN_CHROMIUM", ""), "chromium",
                 "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary on PATH: apt-get install chromium (or set "
                             "TINYGRAD_ATTN_CHROMIUM to one)")


def _stepper(tmp_path):
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                       batch_first=True)
    head = nn.Linear(8, 3)
    x = rng.standard_normal((2, 4, 8)).astype(np.float32)
    loss = ops.cross_entropy(head(layer(ta.Tensor(x, requires_grad=True))).reshape(-1, 3),
                             rng.integers(0, 3, 8))
    page = viz.backward_stepper(loss, tmp_path / "stepper")
    graph = viz.draw_graph(loss)
    return page, len(graph.replay.steps), graph


def _grey_share(png: bytes) -> float:
    """The share of the picture painted the pending-edge grey (#d9d9d9)."""
    import io

    from matplotlib.image import imread

    pixels = (imread(io.BytesIO(png), format="png")[..., :3] * 255).round()
    return float(np.mean(np.all(np.abs(pixels - 217) <= 2, axis=-1)))


def test_stepper_page_steps_with_keys_and_buttons(tmp_path):
    page_path, steps, _ = _stepper(tmp_path)
    # Screenshots go to $TINYGRAD_ATTN_SCREENSHOTS when set (to look at them), else beside
    # the page.
    shots = Path(os.environ.get("TINYGRAD_ATTN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {shots}")
    captions_html = page_path.read_text()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            counter = page.locator("#counter")
            assert counter.inner_text() == f"frame 0 of {steps}"
            first = page.screenshot(path=str(shots / "frame_0.png"))
            page.keyboard.press("ArrowRight")
            assert counter.inner_text() == f"frame 1 of {steps}"
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowLeft")
            assert counter.inner_text() == f"frame 1 of {steps}"
            page.click("#next")
            assert counter.inner_text() == f"frame 2 of {steps}"
            page.click("#prev")
            page.click("#prev")
            assert counter.inner_text() == f"frame 0 of {steps}"
            page.click("#prev")  # stays at the first frame
            assert counter.inner_text() == f"frame 0 of {steps}"
            # walk to the first residual add's backward
            for _ in range(steps):
                page.keyboard.press("ArrowRight")
                if "backward of residual_add" in page.locator("#caption").inner_text():
                    break
            else:
                pytest.fail("no frame shows a residual add's backward")
            residual = page.screenshot(path=str(shots / "frame_residual.png"))
            highlighted = page.evaluate("nodes[step]")
            box = page.locator(f"#{highlighted}").bounding_box()
            assert box is not None
            assert 0 <= box["x"] and box["x"] + box["width"] <= 1280
            assert 0 <= box["y"] and box["y"] + box["height"] <= 900
            stroke = page.evaluate(
                f"getComputedStyle(document.querySelector('#{highlighted} > path, "
                f"#{highlighted} > polygon')).stroke")
            assert stroke == "rgb(209, 73, 91)"  # the highlight colour
            # an edge not reached yet is grey, and never filled
            fills = page.evaluate(
                "[...document.querySelectorAll('g.edge path')].map(p => "
                "getComputedStyle(p).fill)")
            assert fills and set(fills) == {"none"}
        finally:
            browser.close()
    assert errors == []
    assert "residual_add" in captions_html
    for shot in (first, residual):
        assert _grey_share(shot) < 0.02
    assert (shots / "frame_0.png").stat().st_size > 0
    assert (shots / "frame_residual.png").stat().st_size > 0
