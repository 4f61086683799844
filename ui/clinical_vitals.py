"""The Clinical page's Vitals tab: the latest readings as metrics and the trend charts from
``ui.charts``, each drawn over its normal band."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

import streamlit as st

from ehr.models_clinical import Vital
from ehr.services import clinical
from ehr.services.gateway import Gateway
from ui import charts
from ui.clinical_view import BLANK, WHEN_FORMAT

__all__ = ["vitals_tab"]


def _latest(vitals: Sequence[Vital], loinc: str) -> Vital | None:
    readings = [v for v in vitals if v.loinc == loinc and v.value is not None]
    return readings[-1] if readings else None


def _latest_metrics(vitals: Sequence[Vital], tz: tzinfo) -> None:
    codes = charts.LOINC
    systolic, diastolic = _latest(vitals, codes["systolic"]), _latest(vitals, codes["diastolic"])
    shown = {
        "Blood pressure (mmHg)": (
            f"{systolic.value:g}/{diastolic.value:g}" if systolic and diastolic else BLANK
        ),
    }
    for label, key, unit in (
        ("Heart rate", "heart_rate", "/min"),
        ("Weight", "weight", None),
        ("BMI", "bmi", ""),
        ("Temperature", "temperature", None),
    ):
        reading = _latest(vitals, codes[key])
        suffix = (reading.unit or "") if unit is None and reading else (unit or "")
        shown[label] = f"{reading.value:g} {suffix}".strip() if reading else BLANK
    for column, (label, value) in zip(st.columns(len(shown)), shown.items(), strict=True):
        column.metric(label, value)
    taken = max((v.taken_at for v in vitals if v.taken_at), default=None)
    if taken is not None:
        st.caption(f"Latest readings, taken {taken.astimezone(tz):{WHEN_FORMAT}} (practice time).")


def vitals_tab(gw: Gateway, patient_id: int, tz: tzinfo) -> None:
    """The latest readings and the trend charts, each over its normal band."""
    with st.spinner("Loading vital signs…"):
        page = clinical.list_vitals(gw, patient_id)
    if not page.items:
        st.info("No vital signs are recorded for this patient.", icon=":material/monitor_heart:")
        return
    if page.truncated:
        st.warning("Only part of this patient's vitals was loaded; the oldest may be missing.")
    _latest_metrics(page.items, tz)
    left, right = st.columns(2)
    left.plotly_chart(charts.blood_pressure_chart(page.items, tz=tz), key="clinical.chart.bp")
    right.plotly_chart(charts.heart_rate_chart(page.items, tz=tz), key="clinical.chart.hr")
    left.plotly_chart(charts.weight_bmi_chart(page.items, tz=tz), key="clinical.chart.weight")
    right.plotly_chart(charts.temperature_chart(page.items, tz=tz), key="clinical.chart.temp")
    st.caption(charts.BAND_NOTE)
