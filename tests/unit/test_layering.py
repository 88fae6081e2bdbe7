"""The house's layering (README "Layout"): the import-linter contracts of pyproject.toml hold
for the code as it is, and they cover every module of the runtime (``exhaustive``), so a new
module must be given its floor."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "layers" / "common" / "tenant_security"
HANDLERS = sorted((ROOT / "functions").glob("*/app.py"))


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_contracts())} kept, 0 broken" in result.stdout


def test_every_runtime_module_stands_on_a_floor() -> None:
    """Each top-level module or package of the runtime is named in exactly one layer."""
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    assert isinstance(layers["layers"], list)
    named = [m.strip() for layer in layers["layers"] for m in str(layer).replace("|", ":").split(":")]
    present = {p.stem for p in RUNTIME.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in RUNTIME.glob("*/__init__.py")
    }
    assert sorted(named) == sorted(present)
    assert layers["exhaustive"] is True


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_handlers_import_no_store_and_no_tool() -> None:
    """A handler reaches the domain through ``services`` (and the HTTP glue), never by building a
    store or importing the local cloud or the tools."""
    assert HANDLERS
    for handler in HANDLERS:
        imports = _imports(handler)
        assert not {m for m in imports if m.split(".")[0] in ("localcloud", "tenant_security_tools")}, handler
        assert "boto3" not in imports, handler
