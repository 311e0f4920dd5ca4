"""examples/tour.ipynb runs from top to bottom without an error, and shows its pictures
inline: the heatmaps as images, the graph as SVG."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "tour.ipynb"


def test_the_tour_runs_and_shows_its_pictures(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [set(o.get("data", {})) for o in outputs if o.output_type in ("display_data",
                                                                           "execute_result")]
    assert any("image/png" in kinds for kinds in shown)          # the heads' heatmaps
    assert any("image/svg+xml" in kinds for kinds in shown)      # the encoder's graph
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "True True" in text and "sense accuracy 100.0%" in text
