"""AU-01 meta-test: every public function a page can call is a declared, audited service.

Walks every module of ``ehr.services`` (the package pages may import) and fails on a public
function that was not declared with ``@service``: such a function would reach the EHR without
an authorisation check or an audit row. It also checks the other direction: every backend
operation pages need is offered by some service, so nobody is tempted to call the backend.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import ehr.services
from ehr.backend import EHRBackend
from ehr.services.gateway import is_audited, spec_of

# Mechanism modules: they define how services work, not services.
MECHANISM = {"ehr.services.gateway", "ehr.services.scoping"}
# Backend operations served another way, with the reason.
NOT_A_PAGE_CALL = {
    # Billing data reaches pages only through the encrypted mirror, filled by the sync job.
    "iter_line_items",
    "iter_transactions",
    "iter_patient_payments",
    "iter_appointments",
}


# Public functions that read no PHI and run on every rerun, so they write no audit row.
UNAUDITED_METADATA = {
    "ehr.services.connection.connection_summary": "connection state and budget counters",
    "ehr.services.connection.current_connection": "which stored connection is the current one",
}


def _service_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(ehr.services.__path__, "ehr.services."):
        if info.name not in MECHANISM:
            modules.append(importlib.import_module(info.name))
    return modules


def _public_functions(module: ModuleType) -> dict[str, object]:
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and inspect.isfunction(obj)
        and getattr(obj, "__module__", None) == module.__name__
    }


def test_there_are_service_modules_to_check() -> None:
    names = {m.__name__ for m in _service_modules()}
    assert {"ehr.services.patients", "ehr.services.clinical"} <= names


def test_every_public_service_function_is_authorised_and_audited() -> None:
    unaudited = [
        f"{module.__name__}.{name}"
        for module in _service_modules()
        for name, fn in _public_functions(module).items()
        if not is_audited(fn)  # type: ignore[arg-type]
        and f"{module.__name__}.{name}" not in UNAUDITED_METADATA
    ]
    assert unaudited == []


def test_every_exported_name_is_a_service() -> None:
    for module in _service_modules():
        for name in module.__all__:
            exported = getattr(module, name)
            qualified = f"{module.__name__}.{name}"
            if inspect.isfunction(exported) and qualified not in UNAUDITED_METADATA:
                assert is_audited(exported), f"{module.__name__}.{name}"


def test_every_backend_operation_has_a_service() -> None:
    offered = {name for module in _service_modules() for name in _public_functions(module)}
    protocol_methods = {
        name
        for name in vars(EHRBackend)
        if not name.startswith("_") and callable(getattr(EHRBackend, name))
    }
    missing = {
        m for m in protocol_methods - NOT_A_PAGE_CALL if m not in offered and m != "current_user"
    }
    assert missing == set()
    assert "current_ehr_user" in offered  # current_user is offered under a clearer name


def test_the_meta_test_would_catch_an_unaudited_function() -> None:
    module = ModuleType("ehr.services.fake")

    def leak() -> None:
        """Calls the backend directly."""

    leak.__module__ = module.__name__
    module.leak = leak  # type: ignore[attr-defined]
    assert not is_audited(_public_functions(module)["leak"])  # type: ignore[arg-type]
    assert spec_of(_public_functions(module)["leak"]) is None  # type: ignore[arg-type]
