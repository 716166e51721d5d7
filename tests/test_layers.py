"""The package layout: every module lives in a layer, and imports only from the layers its layer's __init__
allows ("May import: ..." in the layer's docstring, the one written statement of the rule; docs/architecture.md).

The imports are read with ast (module level and inside functions alike), so a lazy import counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rnnscope"
MAX_LINES = 600  # one idea per file: a module past this is split along its seams


def layers(root: Path = PACKAGE) -> dict[str, set[str]]:
    """{layer: the layers it may import}, read from each layer's __init__ docstring."""
    out = {}
    for init in sorted(root.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        line = next((ln for ln in doc.splitlines() if ln.startswith("May import:")), None)
        assert line is not None, f"{init}: expected a line 'May import: ...' in the docstring"
        out[init.parent.name] = {w for w in re.findall(r"[a-z_]+", line.split(":", 1)[1])}
    names = set(out)
    return {k: (v & names) - {k} for k, v in out.items()}


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in source, relative imports resolved against module."""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]  # from . import x
            else:
                found.append((node.lineno, target))
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import of rnnscope that crosses the layers the wrong way, as 'file:line: a -> b'."""
    allowed = layers(root)
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        is_pkg = path.name == "__init__.py"
        module = ".".join(rel.with_suffix("").parts[:-1] if is_pkg else rel.with_suffix("").parts)
        mod_parts = module.split(".")
        if len(mod_parts) < 2:
            continue  # rnnscope/__init__.py: the public face re-exports every layer
        layer = mod_parts[1]
        for line, target in imported_modules(path.read_text(encoding="utf-8"), module, is_pkg):
            t = target.split(".")
            if t[0] != "rnnscope":
                continue
            if len(t) == 1:
                bad.append(f"{rel}:{line}: {layer} -> rnnscope (the top level imports every layer)")
            elif t[1] != layer and t[1] not in allowed.get(layer, set()):
                bad.append(f"{rel}:{line}: {layer} -> {t[1]} ({target})")
    return bad


def test_every_module_lives_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], f"modules outside the layers: {loose}"
    assert set(layers()) == {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def test_the_layers_import_each_other_without_cycles():
    allowed = layers()
    assert allowed["core"] == set()
    state: dict[str, int] = {}

    def visit(n: str, path: tuple) -> None:  # depth-first search for a cycle
        assert state.get(n) != 1, f"cycle in the layers: {' -> '.join(path + (n,))}"
        if state.get(n) == 2:
            return
        state[n] = 1
        for m in allowed[n]:
            assert m in allowed, f"{n} may import {m!r}, which is not a layer"
            visit(m, path + (n,))
        state[n] = 2

    for n in allowed:
        visit(n, ())


def test_no_import_crosses_the_layers_upward():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "rnnscope"
    for layer, may in (("core", "no other layer"), ("gradients", "core"), ("app", "core, gradients")):
        (pkg / layer).mkdir(parents=True)
        (pkg / layer / "__init__.py").write_text(f'"""{layer}.\nMay import: {may}\n"""\n')
    (pkg / "__init__.py").write_text("from .app import x\n")
    (pkg / "core" / "cells.py").write_text("def f():\n    from ..gradients.bptt import bptt\n")  # lazy, upward
    (pkg / "gradients" / "bptt.py").write_text("from ..core.cells import f\nimport rnnscope.app.cli\n")
    (pkg / "app" / "cli.py").write_text("from rnnscope.gradients import bptt\nfrom .. import core\n")
    got = violations(pkg)
    assert got == ["rnnscope/core/cells.py:2: core -> gradients (rnnscope.gradients.bptt)",
                   "rnnscope/gradients/bptt.py:2: gradients -> app (rnnscope.app.cli)"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {n} lines, expected at most {MAX_LINES} (split it)"
