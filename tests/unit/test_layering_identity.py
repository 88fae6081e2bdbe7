"""identity sits below authz, context, administration and services; models below identity.

The imports are read from the code (every ``import``, at module level, inside functions and
under ``TYPE_CHECKING`` alike), so a reach upwards fails here, not in a later import circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "common" / "tenant_security"
ABOVE_IDENTITY = tuple(
    f"tenant_security.{name}" for name in ("authz", "context", "administration", "services")
)


def imports_in(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, made absolute;
    ``from tenant_security import x`` counts as ``tenant_security.x`` too."""
    parts = package.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imported_modules(path: Path) -> set[str]:
    """The imports of one module of the ``tenant_security`` package."""
    package = ".".join(("tenant_security", *path.relative_to(PACKAGE).parent.parts))
    return imports_in(path.read_text(), package)


def reaches(path: Path, packages: tuple[str, ...]) -> list[str]:
    """The imports of ``path`` that fall in one of ``packages``."""
    return sorted(
        module
        for module in imported_modules(path)
        if any(module == p or module.startswith(p + ".") for p in packages)
    )


def modules_of(package: str) -> list[Path]:
    """Every module of a subpackage of ``tenant_security``."""
    return sorted((PACKAGE / package).glob("*.py"))


@pytest.mark.parametrize("path", modules_of("identity"), ids=lambda p: p.name)
def test_identity_imports_nothing_above_it(path: Path) -> None:
    assert reaches(path, ABOVE_IDENTITY) == []


@pytest.mark.parametrize("path", modules_of("models"), ids=lambda p: p.name)
def test_models_import_nothing_from_identity(path: Path) -> None:
    assert reaches(path, ("tenant_security.identity",)) == []


def test_the_actor_value_stands_below_everything_that_takes_it() -> None:
    below = ("identity", "authz", "context", "administration", "services")
    assert reaches(PACKAGE / "actors.py", tuple(f"tenant_security.{p}" for p in below)) == []


def test_the_packages_checked_are_there() -> None:
    """An emptied or renamed package would pass the checks above without checking anything."""
    assert {p.name for p in modules_of("identity")} >= {"signin.py", "users.py", "tokens.py"}
    assert {p.name for p in modules_of("models")} >= {"policies.py", "onboarding.py"}


def test_the_reader_sees_every_kind_of_import() -> None:
    """The checks are only as good as the reader: function-level, TYPE_CHECKING, package-level
    and relative imports are all found."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tenant_security.context import TenantContext\n"
        "def f():\n    from tenant_security.authz.decision import bearer_token\n"
        "from tenant_security import services\n"
        "import tenant_security.administration.users\n"
        "from ..authz import rbac\n"
        "from . import users\n"
    )
    found = imports_in(source, "tenant_security.identity")
    assert {
        "tenant_security.context",
        "tenant_security.authz.decision",
        "tenant_security.services",
        "tenant_security.administration.users",
        "tenant_security.authz.rbac",
        "tenant_security.identity.users",
    } <= found
