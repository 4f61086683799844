"""Settings (admins only): the EHR connection, users and roles, the audit log, key rotation and,
in demo mode, the sandbox's training controls.

Each tab runs only while it is open (``on_change="rerun"``), so opening Settings does not walk
the audit chain or write an audit-log READ row until the Audit log tab is chosen.
"""

import streamlit as st

from ehr.policy import Action, PermissionDenied
from ui import session, settings_view, shell, wiring
from ui.errors import guarded, show_error
from ui.settings_audit import audit_section
from ui.settings_connection import connection_section
from ui.settings_demo import sandbox_section
from ui.settings_security import security_section
from ui.settings_users import users_section

caller = session.current_caller_or_stop()
try:
    gw = session.require_page(caller, Action.ADMIN, "settings")
except PermissionDenied as denied:  # audited DENIED by require_page; say so and stop
    st.title("Settings")
    show_error(denied)
    st.stop()

settings = wiring.app_settings()
tz = settings.practice_timezone
sandbox = wiring.sandbox_admin()

st.title("Settings")
settings_view.show_flash()

names = ["EHR connection", "Users and roles", "Audit log", "Security"]
if sandbox is not None:
    names.append("Demo sandbox")
tabs = dict(zip(names, st.tabs(names, key="settings.tab", on_change="rerun"), strict=True))
errors = guarded(tz=tz, is_admin=shell.is_admin(caller))

with tabs["EHR connection"]:
    if tabs["EHR connection"].open:
        with errors:
            connection_section(caller, tz)

with tabs["Users and roles"]:
    if tabs["Users and roles"].open:
        with errors:
            users_section(caller, tz)

with tabs["Audit log"]:
    if tabs["Audit log"].open:
        with errors:
            audit_section(gw, tz, settings.data_dir)

with tabs["Security"]:
    if tabs["Security"].open:
        with errors:
            security_section(caller)

if sandbox is not None:
    with tabs["Demo sandbox"]:
        if tabs["Demo sandbox"].open:
            with errors:
                sandbox_section(gw, sandbox)
