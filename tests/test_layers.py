"""The package's layers: each module imports only its own layer and those above it (README,
"Layout"), function-level imports included, so there is no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lbmm"
LAYERS = ["_jax", "_util", "data", "mixers", "inference", "predict", "corrections", "study",
          "results", "report", "run", "update", "grid", "preselect", "taweret", "cli",
          "__init__"]  # fmt: skip


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def _is_module(name: str) -> bool:
    first = name.split(".")[0]
    return (SRC / f"{first}.py").is_file() or (SRC / first).is_dir()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, lbmm module) of every import of an lbmm module in a file."""
    rel = path.relative_to(SRC).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [mod] if node.module else [a.name for a in node.names]
                # ``from . import __version__``: a name, not a module
                out += [(node.lineno, n) for n in names if n and _is_module(n)]
            elif node.module and node.module.startswith("lbmm."):
                out.append((node.lineno, node.module[5:]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name[5:]) for a in node.names if a.name.startswith("lbmm.")]
    return out


FILES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_respect_the_layers(path):
    own = _layer(path.relative_to(SRC).parts[0].removesuffix(".py"))
    for line, mod in _imports(path):
        assert _layer(mod) <= own, f"{path.name}:{line} imports lbmm.{mod} from a lower layer"
