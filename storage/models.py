"""Imports every table module so that ``SQLModel.metadata`` knows the whole schema.

Each table lives with the code that owns it (``storage/identity.py``, ``storage/audit.py``,
``storage/tokens.py``, ...); Alembic and ``create_schema`` import this module.
"""

import storage.audit  # registers audit_event
import storage.identity  # registers app_user, app_session
import storage.mirror  # registers mirror_batch, mirror_sync_state
import storage.oauth_state  # registers oauth_state
import storage.tokens  # noqa: F401  registers ehr_connection, api_budget (last import: F401 lands here)
