"""Plotly figure factories for the Clinical page: vital-sign trends and lab trends.

Pure functions (STYLE.md practice 15): model lists in, ``go.Figure`` out, no Streamlit, so the
figures are tested directly. Every trend is drawn over a shaded **normal-range band**. The bands
are typical resting values for adults, chosen as a reading aid for the chart: they are not
clinical advice, not targets for a given patient, and not adjusted for age, pregnancy or
condition. A lab band comes from the range the laboratory reported with the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Final

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ehr.models_clinical import LabResult, Vital

__all__ = [
    "BAND_NOTE",
    "BMI_RANGE",
    "DIASTOLIC_RANGE",
    "HEART_RATE_RANGE",
    "LOINC",
    "SYSTOLIC_RANGE",
    "TEMPERATURE_C_RANGE",
    "TEMPERATURE_F_RANGE",
    "NormalRange",
    "blood_pressure_chart",
    "heart_rate_chart",
    "lab_trend_chart",
    "parse_normal_range",
    "temperature_chart",
    "vitals_frame",
    "weight_bmi_chart",
]


@dataclass(frozen=True)
class NormalRange:
    """A shaded band on a chart: ``low``..``high`` in ``unit``."""

    low: float
    high: float
    unit: str


# LOINC codes of the vital signs charted (ehr.drchrono.mapping.VITAL_SIGNS carries the same).
LOINC: Final = {
    "systolic": "8480-6",
    "diastolic": "8462-4",
    "heart_rate": "8867-4",
    "weight": "29463-7",
    "bmi": "39156-5",
    "temperature": "8310-5",
}
# Display aids only (see the module docstring): typical adult resting ranges.
SYSTOLIC_RANGE: Final = NormalRange(90, 120, "mm[Hg]")
DIASTOLIC_RANGE: Final = NormalRange(60, 80, "mm[Hg]")
HEART_RATE_RANGE: Final = NormalRange(60, 100, "/min")
BMI_RANGE: Final = NormalRange(18.5, 25, "kg/m2")
TEMPERATURE_C_RANGE: Final = NormalRange(36.1, 37.2, "°C")
# The same band in Fahrenheit (36.1 °C = 97.0 °F, 37.2 °C = 99.0 °F), for DrChrono's °F.
TEMPERATURE_F_RANGE: Final = NormalRange(97.0, 99.0, "°F")
BAND_NOTE: Final = (
    "Shaded bands are typical adult resting ranges, shown as a reading aid only: not clinical "
    "advice, and not targets for this patient. Lab bands are the laboratory's reported range."
)

# Sized for two charts side by side on a wide page.
CHART_HEIGHT_PX: Final = 320
STACKED_HEIGHT_PX: Final = 420
_MARGIN: Final = {"l": 10, "r": 10, "t": 48, "b": 10}
# Colour-blind-safe pair (Okabe-Ito blue and vermillion) plus a neutral band fill.
_BLUE: Final = "#0072B2"
_ORANGE: Final = "#D55E00"
_GREEN: Final = "#009E73"
_RED: Final = "#C0392B"
_BAND_OPACITY: Final = 0.14
# Headroom above and below the data and band, as a share of what they span.
_PAD_SHARE: Final = 0.15
_FAHRENHEIT: Final = frozenset({"°f", "degf", "[degf]", "f", "fahrenheit"})
_CELSIUS: Final = frozenset({"°c", "degc", "cel", "c", "celsius"})
_NUMBER: Final = r"(-?\d+(?:\.\d+)?)"
_RANGE: Final = re.compile(rf"^\s*{_NUMBER}\s*(?:-|–|to|\s)\s*{_NUMBER}\s*$")
_COLUMNS: Final = ["taken_at", "loinc", "value", "unit"]


def _wall_clock(value: datetime, tz: tzinfo | None) -> datetime:
    """Local wall-clock time (Plotly draws naive times as given, not in the browser's zone)."""
    return (value.astimezone(tz) if tz else value).replace(tzinfo=None)


def vitals_frame(vitals: Iterable[Vital], tz: tzinfo | None = None) -> pd.DataFrame:
    """Readings with a value and a time, oldest first: ``taken_at, loinc, value, unit``.

    ``taken_at`` is naive wall-clock time in ``tz`` (default: the zone the reading carries).
    """
    rows = [
        (_wall_clock(v.taken_at, tz), v.loinc, float(v.value), v.unit or "")
        for v in vitals
        if v.value is not None and v.taken_at is not None
    ]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    return frame.sort_values("taken_at", kind="stable").reset_index(drop=True)


def _series(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame[frame["loinc"] == LOINC[key]]


def _figure(title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=CHART_HEIGHT_PX,
        margin=_MARGIN,
        hovermode="x unified",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        yaxis_title=y_title,
    )
    return fig


def _band(fig: go.Figure, band: NormalRange, colour: str, label: str, **where: int) -> None:
    fig.add_hrect(
        y0=band.low,
        y1=band.high,
        fillcolor=colour,
        opacity=_BAND_OPACITY,
        line_width=0,
        layer="below",
        annotation_text=label,
        annotation_position="bottom left",
        annotation_font={"size": 10, "color": colour},
        **where,
    )


def _fit(
    fig: go.Figure, values: Iterable[float], bands: Sequence[NormalRange], **where: int
) -> None:
    """Show every reading and the whole band with a margin, so a band never fills the plot."""
    spans = [*values, *(b.low for b in bands), *(b.high for b in bands)]
    if not spans:
        return
    low, high = min(spans), max(spans)
    pad = (high - low) * _PAD_SHARE or 1.0
    fig.update_yaxes(range=[low - pad, high + pad], **where)


def _line(frame: pd.DataFrame, name: str, colour: str, unit: str) -> go.Scatter:
    return go.Scatter(
        x=frame["taken_at"],
        y=frame["value"],
        name=name,
        mode="lines+markers",
        line={"color": colour, "width": 2},
        marker={"size": 7},
        hovertemplate=f"%{{y:g}} {unit}<extra>{name}</extra>",
    )


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def blood_pressure_chart(vitals: Iterable[Vital], *, tz: tzinfo | None = None) -> go.Figure:
    """Systolic and diastolic pressure over time, each over its normal band."""
    frame = vitals_frame(vitals, tz)
    fig = _figure("Blood pressure", "mmHg")
    systolic, diastolic = _series(frame, "systolic"), _series(frame, "diastolic")
    if systolic.empty and diastolic.empty:
        return _empty(fig, "No blood pressure readings")
    _band(fig, SYSTOLIC_RANGE, _BLUE, "systolic 90–120")
    _band(fig, DIASTOLIC_RANGE, _ORANGE, "diastolic 60–80")
    fig.add_trace(_line(systolic, "Systolic", _BLUE, "mmHg"))
    fig.add_trace(_line(diastolic, "Diastolic", _ORANGE, "mmHg"))
    _fit(fig, [*systolic["value"], *diastolic["value"]], [SYSTOLIC_RANGE, DIASTOLIC_RANGE])
    return fig


def heart_rate_chart(vitals: Iterable[Vital], *, tz: tzinfo | None = None) -> go.Figure:
    """Heart rate over time over its normal band."""
    frame = vitals_frame(vitals, tz)
    fig = _figure("Heart rate", "beats/min")
    rate = _series(frame, "heart_rate")
    if rate.empty:
        return _empty(fig, "No heart rate readings")
    _band(fig, HEART_RATE_RANGE, _GREEN, "60–100")
    fig.add_trace(_line(rate, "Heart rate", _GREEN, "/min"))
    _fit(fig, rate["value"], [HEART_RATE_RANGE])
    return fig


def weight_bmi_chart(vitals: Iterable[Vital], *, tz: tzinfo | None = None) -> go.Figure:
    """Weight (top) and BMI (bottom, over its band) sharing the time axis."""
    frame = vitals_frame(vitals, tz)
    weight, bmi = _series(frame, "weight"), _series(frame, "bmi")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1)
    fig.update_layout(
        title={"text": "Weight and BMI", "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=STACKED_HEIGHT_PX,
        margin=_MARGIN,
        hovermode="x unified",
        showlegend=False,
    )
    if weight.empty and bmi.empty:
        return _empty(fig, "No weight or BMI readings")
    weight_unit = _unit(weight, "")
    fig.add_trace(_line(weight, "Weight", _BLUE, weight_unit), row=1, col=1)
    fig.add_trace(_line(bmi, "BMI", _ORANGE, "kg/m²"), row=2, col=1)
    # After the traces: Plotly skips a band on a subplot that has no data yet.
    _band(fig, BMI_RANGE, _ORANGE, "BMI 18.5–25", row=2, col=1)
    _fit(fig, weight["value"], [], row=1, col=1)
    _fit(fig, bmi["value"], [BMI_RANGE], row=2, col=1)
    fig.update_yaxes(title_text=f"Weight ({weight_unit})" if weight_unit else "Weight", row=1)
    fig.update_yaxes(title_text="BMI (kg/m²)", row=2)
    return fig


def _unit(frame: pd.DataFrame, default: str) -> str:
    """The unit of the latest reading (what the chart is drawn in)."""
    return str(frame["unit"].iloc[-1]) if not frame.empty else default


def _scale(unit: str) -> str | None:
    folded = unit.strip().casefold()
    if folded in _FAHRENHEIT:
        return "F"
    if folded in _CELSIUS:
        return "C"
    return None


def _to_scale(value: float, source: str | None, target: str) -> float | None:
    if source == target:
        return value
    if source == "C" and target == "F":
        return value * 9 / 5 + 32
    if source == "F" and target == "C":
        return (value - 32) * 5 / 9
    return None  # an unknown unit is left out rather than drawn on the wrong scale


def temperature_chart(vitals: Iterable[Vital], *, tz: tzinfo | None = None) -> go.Figure:
    """Body temperature over time in the unit of the latest reading, over its normal band.

    Readings in the other scale are converted; readings in a unit not recognised as °C or °F
    are left out (and there is then no band when the latest unit itself is unknown).
    """
    frame = _series(vitals_frame(vitals, tz), "temperature")
    fig = _figure("Temperature", "")
    if frame.empty:
        return _empty(fig, "No temperature readings")
    unit = _unit(frame, "")
    target = _scale(unit)
    if target is None:
        fig.update_layout(yaxis_title=unit)
        fig.add_trace(_line(frame[frame["unit"] == unit], "Temperature", _RED, unit))
        return fig
    values = [
        _to_scale(v, _scale(u), target) for v, u in zip(frame["value"], frame["unit"], strict=True)
    ]
    converted = frame.assign(value=pd.Series(values, index=frame.index)).dropna(subset=["value"])
    band = TEMPERATURE_F_RANGE if target == "F" else TEMPERATURE_C_RANGE
    label = f"{band.low:g}–{band.high:g} {band.unit}"
    fig.update_layout(yaxis_title=band.unit)
    _band(fig, band, _RED, label)
    fig.add_trace(_line(converted, "Temperature", _RED, band.unit))
    _fit(fig, converted["value"], [band])
    return fig


# ----------------------------------------------------------------------------- labs


def parse_normal_range(text: str | None) -> tuple[float, float] | None:
    """``(low, high)`` from a lab's range text ("4 5.6", "70-99", "3.5 to 5"), else None."""
    if not text:
        return None
    match = _RANGE.match(text)
    if match is None:
        return None
    low, high = float(match.group(1)), float(match.group(2))
    return (low, high) if low <= high else None


def _when(result: LabResult) -> datetime | None:
    if result.performed_on is not None:
        return datetime.combine(result.performed_on, datetime.min.time())
    return result.updated_at.replace(tzinfo=None) if result.updated_at else None


def lab_trend_chart(results: Sequence[LabResult], test: str) -> go.Figure:
    """The numeric results of one test, oldest first, over the lab's normal range.

    The x axis is the result's date when every result has one; DrChrono's order results carry
    none, so they are then placed in lab-order sequence (1 = oldest) and the axis says so.
    Abnormal results are drawn in red.
    """
    chosen = [r for r in results if r.test == test and isinstance(r.numeric_value, Decimal)]
    chosen.sort(key=lambda r: (r.order_id or 0, r.id))
    unit = next((r.unit for r in reversed(chosen) if r.unit), "")
    fig = _figure(test, unit)
    if not chosen:
        return _empty(fig, "No numeric results for this test")
    dates = [_when(r) for r in chosen]
    dated = all(d is not None for d in dates)
    x: list[object]
    if dated:
        pairs = sorted(zip(dates, chosen, strict=True), key=lambda pair: pair[0] or datetime.min)
        x, chosen = [d for d, _r in pairs], [r for _d, r in pairs]
    else:
        x = list(range(1, len(chosen) + 1))
        fig.update_xaxes(title_text="Result (by lab order, oldest first)", dtick=1)
    bounds = parse_normal_range(chosen[-1].normal_range)
    band = NormalRange(bounds[0], bounds[1], unit) if bounds else None
    if band is not None:
        _band(fig, band, _BLUE, f"reported range {band.low:g}–{band.high:g}")
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[float(r.numeric_value or 0) for r in chosen],
            name=test,
            mode="lines+markers",
            line={"color": _BLUE, "width": 2},
            marker={"size": 9, "color": [_RED if r.is_abnormal else _BLUE for r in chosen]},
            text=[r.abnormal_flag or "" for r in chosen],
            hovertemplate=f"%{{y:g}} {unit} %{{text}}<extra></extra>",
        )
    )
    _fit(fig, [float(r.numeric_value or 0) for r in chosen], [band] if band else [])
    return fig
