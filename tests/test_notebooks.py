"""The lessons in notebooks/ run from a clean kernel, check their own numbers, and are committed without outputs.

Every notebooks/*.ipynb is executed top to bottom by nbclient on the "python3" kernel (this environment's
ipykernel: jupyter_client starts a kernelspec whose argv is `python` with the running interpreter, so the kernel
uses the .venv that runs the tests; test_kernel_is_this_environment checks it), with a temporary folder as its
working directory, so a notebook writes nothing into the repository. Each notebook asserts its key numbers against
references it computes itself (autograd, closed forms, plain numpy), so a failed assertion or any error in a cell
raises CellExecutionError and fails that notebook's test, which names the notebook and the cell.

Each execution time is printed (pytest -s or -rP shows it) and written to test-artifacts/notebook-times.json;
the lessons are meant to take well under a minute each on a 2-core CPU, and a test fails beyond NOTEBOOK_BUDGET_S.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts"
CELL_TIMEOUT_S = 300  # per cell: generous for a busy machine; the lessons' slowest cell takes about 10 s here
NOTEBOOK_BUDGET_S = 150.0  # a lesson is meant to run in under ~45 s here; over three times that is a regression
EXPECTED = ["01-seed-002-lab.ipynb", "02-bptt-by-hand.ipynb", "03-why-my-lstm-forgets.ipynb",
            "04-edge-of-chaos.ipynb", "05-remedies.ipynb", "06-after-the-seeds.ipynb"]


def _execute(nb: nbformat.NotebookNode, folder: Path) -> float:
    """Run every cell of nb in a fresh python3 kernel whose working directory is folder; return the seconds taken."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def _record_time(name: str, seconds: float) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "notebook-times.json"
    try:
        times = json.loads(path.read_text())
    except (OSError, ValueError):
        times = {}
    times[name] = round(seconds, 2)
    path.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")


def test_the_lessons_are_there():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_checks_itself(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    before = sorted(p.relative_to(NOTEBOOK_DIR) for p in NOTEBOOK_DIR.rglob("*"))
    try:
        seconds = _execute(nb, tmp_path)
    except CellExecutionError as e:  # the cell's source and traceback are in the message
        pytest.fail(f"{path.name}: a cell failed\n{e}", pytrace=False)
    print(f"{path.name}: executed in {seconds:.1f} s")
    _record_time(path.name, seconds)
    assert sorted(p.relative_to(NOTEBOOK_DIR) for p in NOTEBOOK_DIR.rglob("*")) == before  # nothing written beside it
    codes = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in codes)  # every cell ran
    errors = [o for c in codes for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert sum("assert " in c.source for c in codes) >= 4, f"{path.name}: expected a lesson that checks its numbers"
    assert seconds < NOTEBOOK_BUDGET_S, (f"{path.name}: expected under {NOTEBOOK_BUDGET_S:.0f} s (meant to be ~45 s at "
                                         f"most on a 2-core CPU), got {seconds:.0f} s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    codes = [c for c in nb.cells if c.cell_type == "code"]
    assert codes, f"{path.name}: expected code cells"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert dirty == [], f"{path.name}: expected no outputs and no execution counts, got them in cells {dirty}"
    text = path.read_text(encoding="utf-8")
    assert "/work/shared" not in text and "shared/seeds" not in text  # a clone has no such folder


def test_kernel_is_this_environment(tmp_path: Path):
    """The "python3" kernel runs this interpreter's environment (the .venv), not some other Python on the machine."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys\nprint(os.path.realpath(sys.prefix))\nprint(os.getcwd())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    _execute(nb, tmp_path)
    prefix, cwd = nb.cells[0].outputs[0]["text"].split()
    assert prefix == os.path.realpath(sys.prefix)
    assert os.path.realpath(cwd) == os.path.realpath(tmp_path)
