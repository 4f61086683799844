"""Every page file is registered with its permission, and navigation follows the role."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehr.policy import Principal, is_allowed
from ui.navigation import PAGES, safe_next_path

ROOT = Path(__file__).resolve().parents[2]
HOME = "pages/home.py"  # the default page, shown to every signed-in role


def test_every_file_in_pages_is_registered_and_every_registered_page_exists() -> None:
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py")}
    registered = {spec.script for spec in PAGES}
    assert on_disk == registered | {HOME}
    assert len({spec.url_path for spec in PAGES}) == len(PAGES)


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("admin", {"patients", "appointments", "clinical", "billing", "settings"}),
        ("clinician", {"patients", "appointments", "clinical"}),
        ("front_desk", {"patients", "appointments"}),
        ("billing", {"patients", "appointments", "billing"}),
    ],
)
def test_the_menu_per_role_follows_the_policy(role: str, visible: set[str]) -> None:
    principal = Principal(1, "u", role, True)
    assert {s.url_path for s in PAGES if is_allowed(principal, s.needs)} == visible


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/patients", "/patients"),
        ("/", "/"),
        (None, "/"),
        ("https://evil.example/x", "/"),
        ("//evil.example", "/"),
        ("/\\evil", "/"),
        ("javascript:alert(1)", "/"),
        ("/patients?x=1", "/"),
        ("/unknown", "/"),
    ],
)
def test_only_the_apps_own_pages_are_accepted_after_sign_in(value, expected) -> None:
    assert safe_next_path(value) == expected
