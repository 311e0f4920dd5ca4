"""The gradient-check report: every op on its sample inputs, one row per op."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from tinygrad_attn.gradcheck import compare_gradients
from tinygrad_attn.ops.samples import SAMPLES, Case


@dataclass
class OpResult:
    op: str
    cases: int
    max_abs_error: float
    max_rel_error: float
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def check_case(case: Case, seed: int = 0) -> list:
    return compare_gradients(case.fn, case.inputs(seed))


def check_op(op: str) -> OpResult:
    max_abs = max_rel = 0.0
    failures = []
    for case in SAMPLES[op]:
        reports = check_case(case)
        max_abs = max([max_abs] + [r.max_abs_error for r in reports])
        max_rel = max([max_rel] + [r.max_rel_error for r in reports])
        failures += [f"{op} [{case.label}] {r.describe()}" for r in reports if not r.passed]
    return OpResult(op, len(SAMPLES[op]), max_abs, max_rel, failures)


def main(ops: list[str] | None = None) -> int:
    """Print the table; return 0 if every op passes, 1 otherwise."""
    names = ops or sorted(SAMPLES)
    unknown = [n for n in names if n not in SAMPLES]
    if unknown:
        print(f"gradcheck: unknown op(s) {', '.join(unknown)}; known: "
              f"{', '.join(sorted(SAMPLES))}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    print("Gradient check: analytic backward vs central finite differences, float64")
    print(f"{'op':<30} {'cases':>5} {'max abs err':>12} {'max rel err':>12}  result")
    results = []
    for name in names:
        result = check_op(name)
        results.append(result)
        print(f"{name:<30} {result.cases:>5} {result.max_abs_error:>12.2e} "
              f"{result.max_rel_error:>12.2e}  {'pass' if result.passed else 'FAIL'}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        for line in r.failures:
            print("  " + line)
    cases = sum(r.cases for r in results)
    print(f"{len(results) - len(failed)} of {len(results)} ops pass ({cases} cases, "
          f"{time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0
