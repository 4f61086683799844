"""The app's pages: one row per file in ``pages/``, with the permission each needs.

``Home.py`` builds ``st.navigation`` from this table for the signed-in role (pages a role may
not use are absent), the sign-in route accepts only these paths as a post-login ``next``
(SECURITY.md OA-03), and a test checks every file in ``pages/`` is registered here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ehr.policy import Action

__all__ = ["PAGES", "PageSpec", "safe_next_path"]


@dataclass(frozen=True)
class PageSpec:
    """One page: its script, title, icon, URL path and the permission that shows it."""

    script: str
    title: str
    icon: str
    url_path: str
    needs: Action


PAGES: Final[tuple[PageSpec, ...]] = (
    PageSpec("pages/patients.py", "Patients", ":material/person_search:", "patients", Action.PATIENT_READ),
    PageSpec("pages/appointments.py", "Appointments", ":material/calendar_month:", "appointments", Action.APPOINTMENT_READ),
    PageSpec("pages/clinical.py", "Clinical", ":material/medical_information:", "clinical", Action.CLINICAL_READ),
    PageSpec("pages/billing.py", "Billing", ":material/payments:", "billing", Action.BILLING_READ),
    PageSpec("pages/settings.py", "Settings", ":material/settings:", "settings", Action.ADMIN),
)  # fmt: skip

_ALLOWED_NEXT: Final = frozenset({"/", *(f"/{p.url_path}" for p in PAGES)})
_PATH: Final = re.compile(r"^/[a-z_-]*$")


def safe_next_path(value: str | None) -> str:
    """``value`` if it is one of the app's own page paths, else ``/`` (no open redirect)."""
    if value and _PATH.fullmatch(value) and value in _ALLOWED_NEXT:
        return value
    return "/"
