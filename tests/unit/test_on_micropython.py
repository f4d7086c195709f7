"""The same core cases that pytest runs on CPython, run on the unix-port MicroPython."""

import ast
from pathlib import Path

import pytest

from host_tools.sim.runtime import run_micropython

HERE = Path(__file__).parent
CASE_MODULES = sorted(p.stem for p in HERE.glob("cases_*.py"))


def count_cases(stem):
    tree = ast.parse((HERE / (stem + ".py")).read_text())
    return sum(
        1 for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    )


@pytest.mark.parametrize("module", CASE_MODULES)
def test_cases_pass_on_micropython(module):
    proc = run_micropython(
        [str(HERE / "mp_run.py"), module],
        extra_paths=[HERE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert last == "%d passed, 0 failed" % count_cases(module), proc.stdout
