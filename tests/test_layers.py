"""The layer rules of DESIGN.md section 3, checked by scanning imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION_ROOT = {"ui/wiring.py"}


def _python_files(*parts: str) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        path = ROOT / part
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{rel} imports {name}")
    return found


@pytest.mark.parametrize("package", ["ehr", "storage"])
def test_core_packages_never_import_streamlit_or_ui(package):
    assert not _violations(_python_files(package), ("streamlit", "ui", "pages"))


def test_storage_is_the_lowest_layer():
    assert not _violations(_python_files("storage"), ("ehr", "ui", "pages"))


def test_pages_and_ui_reach_the_ehr_only_through_services():
    paths = [
        p
        for p in _python_files("Home.py", "pages", "ui")
        if p.exists() and p.relative_to(ROOT).as_posix() not in COMPOSITION_ROOT
    ]
    forbidden = ("requests", "sqlmodel", "sqlalchemy", "ehr.drchrono", "ehr.sandbox", "storage")
    assert not _violations(paths, forbidden)


def test_only_the_composition_root_and_tests_import_the_sandbox():
    paths = [
        p
        for p in _python_files("ehr", "storage", "ui", "pages", "Home.py")
        if p.exists()
        and not p.relative_to(ROOT).as_posix().startswith("ehr/sandbox/")
        and p.relative_to(ROOT).as_posix() not in COMPOSITION_ROOT
    ]
    assert not _violations(paths, ("ehr.sandbox",))
