"""The service gateway: the only EHR entry point pages use (DESIGN.md section 4).

``gateway`` holds the mechanism (authorise, audit, cache, scope); the other modules hold one
function per thing a page can ask, each declared with ``@service``. A meta-test walks every
public function here and fails if one is not declared that way (SECURITY.md AU-01).
"""

from ehr.services import accounts, appointments, clinical, patients, practice
from ehr.services.gateway import Caller, Gateway, SessionCache

__all__ = [
    "Caller",
    "Gateway",
    "SessionCache",
    "accounts",
    "appointments",
    "clinical",
    "patients",
    "practice",
]
