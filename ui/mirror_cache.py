"""What a page built from the analytics mirror, kept for this browser session until it is stale.

Billing and scheduling analytics load the encrypted mirror and aggregate it; redoing that on
every rerun (each click) is what made those pages slow. ``kept(name, key, build)`` returns the
value built for an equal ``key`` earlier in this session, else calls ``build`` and keeps its
result under ``name`` instead of the old one (one entry per name, so memory stays bounded).

Keys start with the mirror version's key (``ehr.services.mirror.MirrorVersion.key``), read
through an audited service on every view, so a sync that stores a batch makes every kept value
stale and each view still leaves its audit row. The rest of the key is whatever else the value
depends on (filters, a date range, provider names); keys are compared with ``==``.

Values live in ``st.session_state``, never ``st.cache_data`` (which every session shares):
patient-derived data never crosses sessions, and sign-out or a change of user drops it with
the rest of the session state (``ui.session``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import streamlit as st

__all__ = ["kept"]

T = TypeVar("T")


@dataclass(frozen=True)
class _Kept:
    key: Any
    value: Any


def kept(name: str, key: object, build: Callable[[], T]) -> T:
    """The value kept under ``name`` for an equal ``key``, else ``build()`` (then kept)."""
    entry = st.session_state.get(name)
    if isinstance(entry, _Kept) and _same(entry.key, key):
        return cast(T, entry.value)
    value = build()
    st.session_state[name] = _Kept(key, value)
    return value


def _same(left: object, right: object) -> bool:
    try:
        return bool(left == right)
    except (TypeError, ValueError):  # e.g. an array somewhere in a key: never equal
        return False
