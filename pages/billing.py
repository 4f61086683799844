"""Billing: revenue-cycle KPIs, charts with drill-down, the line items behind them and their
audited export. Reads the encrypted local mirror (no EHR call per view); admins can sync it."""

from datetime import datetime
from functools import partial

import streamlit as st

from ehr.policy import Action, PermissionDenied
from ehr.services import connection
from ui import billing_view as view
from ui import session, shell, wiring
from ui.billing_detail import detail_section
from ui.errors import guarded, show_error

caller = session.current_caller_or_stop()
try:
    gw = session.require_page(caller, Action.BILLING_READ, "billing")
except PermissionDenied as denied:  # audited DENIED by require_page; say so and stop
    st.title("Billing")
    show_error(denied)
    st.stop()

tz = wiring.app_settings().practice_timezone
today = datetime.now(tz).date()
admin = shell.is_admin(caller)
errors = partial(guarded, tz=tz, is_admin=admin)  # a fresh guard per block
connected = connection.connection_summary(wiring.connector()).state == "connected"

st.title("Billing")
view.show_sync_message()
loaded = None
with errors():
    version, loaded = view.load(gw)
if loaded is None:
    with errors():
        view.sync_panel(gw, is_admin=admin, connected=connected, empty=True)
    st.stop()

names = view.provider_names(gw)
filters = view.filter_sidebar(loaded, names, today)
if filters is None:
    st.stop()
st.caption(
    f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y} · charges by service date, payments "
    "and adjustments by posted date, A/R as of the range end. Hover a tile for its formula."
)
if not view.has_activity(loaded, filters):
    st.info("No billing activity in this date range for these filters. Widen the range or filters.")
    st.caption(view.data_as_of(version, tz))
    st.stop()

view.kpi_tiles(loaded, filters)
st.caption(view.data_as_of(version, tz))
selections = view.chart_grid(loaded, filters, names)
with errors():
    detail_section(gw, loaded, filters, selections, names)
if admin:
    with st.expander("Mirror sync", icon=":material/sync:"), errors():
        view.sync_panel(gw, is_admin=admin, connected=connected, empty=False)
