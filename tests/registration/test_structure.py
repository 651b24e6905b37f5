"""The registration package's layout: one pyramid rule, arrows one way, no private names across modules."""

from __future__ import annotations

import ast
from pathlib import Path

import multiscale.registration as reg
from multiscale.registration._optimiser import usable_levels

PACKAGE = Path(reg.__file__).parent


def _imports(path: Path) -> list[tuple[str | None, int, str]]:
    """(module, level, name) of every ``from ... import name`` in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out += [(node.module, node.level, a.name) for a in node.names]
    return out


def test_usable_levels_serves_both_callers():
    # register(): one-pixel sides (a single-slice volume) do not limit the pyramid
    assert usable_levels((256, 256, 1), 6) == 4  # 1 + floor(log2(256 / 24))
    assert usable_levels((300, 200), 6, min_pixels=32) == 3
    assert usable_levels((1, 1), 6) == 1
    # register_slice_to_volume(): the section's shortest side, whatever it is, bounds the pyramid
    assert usable_levels((256, 256, 1), 6, skip_singleton=False) == 1
    assert usable_levels((200, 100), 3, skip_singleton=False) == 3
    assert usable_levels((200, 40), 3, skip_singleton=False) == 1
    # the two agree whenever no side is one pixel
    for size in ((64, 48), (512, 100), (30, 30, 30)):
        assert usable_levels(size, 6) == usable_levels(size, 6, skip_singleton=False)


def test_one_definition_of_usable_levels():
    defs = [p.name for p in PACKAGE.glob("*.py")
            if any(isinstance(n, ast.FunctionDef) and n.name.lstrip("_") == "usable_levels"
                   for n in ast.walk(ast.parse(p.read_text())))]
    assert defs == ["_optimiser.py"]


def test_no_module_imports_a_private_name():
    bad = [(p.name, mod, name) for p in PACKAGE.glob("*.py") for mod, _, name in _imports(p)
           if name.startswith("_") and mod != "__future__"]
    assert bad == []


def test_methods_and_slice_to_volume_import_one_way():
    def local(p: str) -> set[str]:
        return {mod for mod, level, _ in _imports(PACKAGE / p) if level == 1 and mod}

    assert "slice_to_volume" in local("methods.py")
    assert "methods" not in local("slice_to_volume.py") and "stacks" not in local("slice_to_volume.py")
    assert {"methods", "slice_to_volume", "stacks"}.isdisjoint(local("_optimiser.py"))


def test_errors_come_from_multiscale_errors():
    from multiscale import errors

    assert reg.RegistrationError is errors.RegistrationError and reg.TransformError is errors.TransformError
    for p in PACKAGE.glob("*.py"):
        tree = ast.parse(p.read_text())
        assert not [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith("Error")], p


def test_public_names_are_exported():
    for name in ("resample_chain", "analysis_grid", "anti_alias", "compose_chain", "linear_summary",
                 "truth_transform", "read_landmarks", "alignment_quality", "checkerboard_array", "central_slice",
                 "registration_figure", "reconstruct_stack"):
        assert name in reg.__all__ and callable(getattr(reg, name))
