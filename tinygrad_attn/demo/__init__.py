"""The demo: "Xiaoming lives in a beautiful coastal city ... so his favourite sport is
surfing", as a task a Transformer learns and a vanilla RNN does not
(:mod:`.long_range`), and the residual experiment behind ``python -m tinygrad_attn graph``
(:mod:`.residuals`)."""

from __future__ import annotations

from tinygrad_attn.demo import task
from tinygrad_attn.demo.long_range import (
    Config,
    DemoResult,
    print_report,
    run,
    train_and_measure,
    write_outputs,
)

__all__ = ["Config", "DemoResult", "print_report", "run", "task", "train_and_measure",
           "write_outputs"]
