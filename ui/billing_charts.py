"""Plotly figure factories for the Billing page, and what a selection on them means.

Pure functions (STYLE.md practice 15): a small aggregated frame from ``ehr.analytics.billing``
in, ``go.Figure`` out, no Streamlit, so the figures are tested directly. Every point is one
aggregate (a month, a bucket, a payer, a code, a provider): no per-line-item data reaches the
browser through a chart. Money arrives in integer cents and is drawn in dollars.

**Drill-down.** Each point carries, in ``customdata``, the values that identify it (its month,
payer, bucket, code, provider or claim status); the names of those values are in
``fig.layout.meta["select_fields"]``. ``selection_from_event`` turns the event Streamlit
returns for a selection (``st.plotly_chart(..., on_select="rerun")``) into a ``Selection``: a
set of points, each a field→value mapping, which the page applies to its detail table (a row
matches when it matches any selected point in every field that point names).

Pie slices cannot be selected in Streamlit, so the payer mix is drawn as bars.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

__all__ = [
    "AGING_BUCKETS",
    "BUCKET",
    "CODE",
    "DOCTOR",
    "MONTH",
    "PAYER",
    "RESPONSIBILITY",
    "STATUS",
    "Selection",
    "ar_aging_chart",
    "ar_by_payer_chart",
    "denials_chart",
    "monthly_totals_chart",
    "payer_mix_chart",
    "provider_chart",
    "select_fields",
    "selection_from_event",
    "top_cpt_chart",
]

# Selection fields: the names a point's customdata values go by.
MONTH: Final = "month"  # "YYYY-MM"
PAYER: Final = "payer"
BUCKET: Final = "bucket"
RESPONSIBILITY: Final = "responsibility"  # "insurer" or "patient"
CODE: Final = "code"
DOCTOR: Final = "doctor_id"  # as text
STATUS: Final = "claim_status"  # the raw status value
_META_KEY: Final = "select_fields"

# The same buckets as ``ehr.analytics.billing.AGING_BUCKETS`` (charts never import the
# analytics package: they only draw the frames it produces).
AGING_BUCKETS: Final = ("0-30", "31-60", "61-90", "91-120", "120+")
_RESPONSIBILITIES: Final = ("insurer", "patient")

# Setting a template by name re-validates its whole tree on every figure (~9 ms each, seven per
# Billing view); a figure created while it is the process default gets it unvalidated, with
# the same result. Every chart in this app uses it, so it is made the default once, here.
_TEMPLATE: Final = "plotly_white"
pio.templates.default = _TEMPLATE

CHART_HEIGHT_PX: Final = 340
# Horizontal bar charts grow with their categories so labels never overlap.
_ROW_PX: Final = 34
_MIN_BAR_HEIGHT_PX: Final = 260
_MAX_BAR_HEIGHT_PX: Final = 720
_LEGEND_ENTRY_PX: Final = 20
_UNIT_TICKS_UP_TO: Final = 10
_MARGIN: Final = {"l": 10, "r": 10, "t": 56, "b": 10}
_CENTS: Final = 100.0
# Okabe-Ito colour-blind-safe palette; buckets run from calm (young) to alarming (old).
_BLUE: Final = "#0072B2"
_GREEN: Final = "#009E73"
_ORANGE: Final = "#E69F00"
_VERMILLION: Final = "#D55E00"
_SKY: Final = "#56B4E9"
_PURPLE: Final = "#CC79A7"
_GREY: Final = "#999999"
_YELLOW: Final = "#F0E442"
_BUCKET_COLOURS: Final = (_GREEN, _SKY, _ORANGE, _VERMILLION, "#8B1E00")
_SERIES_COLOURS: Final = (_BLUE, _ORANGE, _GREEN, _PURPLE, _SKY, _VERMILLION, _GREY, _YELLOW)
# Denial statuses get a fill pattern each, so payer (colour) and status (pattern) read apart.
_PATTERNS: Final = ("", "/", "x", ".", "\\", "+")


@dataclass(frozen=True)
class Selection:
    """Selected chart points: each a mapping of selection field to value (empty: nothing)."""

    points: tuple[Mapping[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.points)

    def fields(self) -> frozenset[str]:
        """Every field any selected point names."""
        return frozenset(field for point in self.points for field in point)

    def describe(self, labels: Mapping[str, Mapping[str, str]] | None = None) -> str:
        """ "payer Aetna and month 2026-01; or …" for a caption (``labels`` maps field values)."""
        labels = labels or {}
        parts = [
            " and ".join(
                f"{f.replace('_', ' ')} {labels.get(f, {}).get(v, v)}" for f, v in p.items()
            )
            for p in self.points
        ]
        return "; or ".join(parts)


def select_fields(fig: go.Figure) -> tuple[str, ...]:
    """The selection fields of a figure made here (empty for a figure without any)."""
    meta = fig.layout.meta
    fields = meta.get(_META_KEY, ()) if isinstance(meta, Mapping) else ()
    return tuple(str(f) for f in fields)


def selection_from_event(fields: Sequence[str], event: Any) -> Selection:
    """The points of a Streamlit selection event, as field→value mappings.

    ``event`` is what ``st.plotly_chart(..., on_select="rerun")`` returned (or anything else:
    no selection). A point whose customdata does not have one value per field is ignored, so
    a forged or stale event selects nothing rather than something wrong. Duplicates collapse.
    """
    selection = _get(event, "selection")
    points = _get(selection, "points")
    if not fields or not isinstance(points, list):
        return Selection()
    found: list[Mapping[str, str]] = []
    for point in points:
        values = _get(point, "customdata")
        if not isinstance(values, list) or len(values) != len(fields):
            continue
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            continue
        mapping = dict(zip(fields, (str(v) for v in values), strict=True))
        if mapping not in found:
            found.append(mapping)
    return Selection(tuple(found))


def _get(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)


# ----------------------------------------------------------------------------- helpers


def _dollars(cents: Iterable[Any]) -> list[float]:
    return [float(c) / _CENTS for c in cents]


def _money_text(cents: Iterable[Any]) -> list[str]:
    return [_short_money(float(c) / _CENTS) for c in cents]


def _short_money(dollars: float) -> str:
    if abs(dollars) >= 1_000_000:
        return f"${dollars / 1_000_000:.1f}M"
    if abs(dollars) >= 10_000:
        return f"${dollars / 1_000:.0f}k"
    if abs(dollars) >= 1_000:
        return f"${dollars / 1_000:.1f}k"
    return f"${dollars:,.0f}"


def _month_label(month: pd.Timestamp) -> str:
    return f"{month:%b %Y}"


def _short_month(month: pd.Timestamp) -> str:
    return f"{month:%b %y}"


def _month_key(month: pd.Timestamp) -> str:
    return f"{month:%Y-%m}"


def _figure(title: str, fields: Sequence[str], *, height: int = CHART_HEIGHT_PX) -> go.Figure:
    fig = go.Figure()
    _style(fig, title, fields, height)
    return fig


def _style(fig: go.Figure, title: str, fields: Sequence[str], height: int) -> None:
    if pio.templates.default != _TEMPLATE:  # someone changed the default since the import
        fig.update_layout(template=_TEMPLATE)
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        height=height,
        margin=_MARGIN,
        # Under the plot: a legend of five buckets or many payers would cover the title.
        legend={
            "orientation": "h",
            "y": -0.12,
            "yanchor": "top",
            "x": 0,
            "xanchor": "left",
            "traceorder": "normal",
        },
        meta={_META_KEY: list(fields)},
        # No clickmode/dragmode here: Streamlit sets them for on_select, and a "select"
        # dragmode would make it turn click-to-select off (boxes stay in the modebar).
        # Bar labels too small to read are hidden rather than drawn as clipped digits.
        uniformtext={"minsize": 10, "mode": "hide"},
    )


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _bar_height(categories: int) -> int:
    wanted = _MARGIN["t"] + _MARGIN["b"] + 60 + categories * _ROW_PX
    return max(_MIN_BAR_HEIGHT_PX, min(_MAX_BAR_HEIGHT_PX, wanted))


def _share_text(values: Iterable[Any]) -> list[str]:
    return ["" if pd.isna(v) else f"{float(v):.0%}" for v in values]


# ----------------------------------------------------------------------------- figures


def monthly_totals_chart(frame: pd.DataFrame) -> go.Figure:
    """Charges, payments and adjustments per month (``monthly_totals``), as grouped bars.

    Selecting a month filters the detail to line items serviced in that month.
    """
    fig = _figure("Charges, payments and adjustments by month", [MONTH])
    if frame.empty:
        return _empty(fig, "No months in the range")
    months = list(frame["month"])
    x = [_month_label(m) for m in months]
    keys = [[_month_key(m)] for m in months]
    series = (("charges", "Charges", _BLUE), ("payments", "Payments", _GREEN))
    for column, name, colour in (*series, ("adjustments", "Adjustments", _ORANGE)):
        fig.add_trace(
            go.Bar(
                x=x,
                y=_dollars(frame[column]),
                name=name,
                marker_color=colour,
                customdata=keys,
                hovertemplate=f"{name} %{{x}}: $%{{y:,.2f}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group", yaxis={"title": "US$", "tickprefix": "$", "tickformat": ",.0f"}
    )
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=x)
    return fig


def ar_aging_chart(frame: pd.DataFrame) -> go.Figure:
    """A/R by aging bucket (``ar_aging`` rows), stacked insurer vs patient.

    Every bucket is on the axis, empty ones at zero, so the shape reads the same every month.
    """
    fig = _figure("A/R aging: insurer vs patient", [BUCKET, RESPONSIBILITY])
    if frame.empty:
        return _empty(fig, "No open balances")
    grouped = frame.groupby(["responsibility", "bucket"], observed=False)["balance"].sum()
    total = float(frame["balance"].sum())
    for responsibility, colour in zip(_RESPONSIBILITIES, (_BLUE, _ORANGE), strict=True):
        cents = [int(grouped.get((responsibility, b), 0)) for b in AGING_BUCKETS]
        fig.add_trace(
            go.Bar(
                x=[f"{b} days" for b in AGING_BUCKETS],
                y=_dollars(cents),
                name=responsibility.capitalize(),
                marker_color=colour,
                customdata=[[b, responsibility] for b in AGING_BUCKETS],
                text=[f"{c / total:.0%}" if c and total else "" for c in cents],
                textposition="inside",
                hovertemplate=f"{responsibility.capitalize()}, %{{x}}: $%{{y:,.2f}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        xaxis={"type": "category"},
        yaxis={"title": "US$", "tickprefix": "$", "tickformat": ",.0f"},
    )
    return fig


def ar_by_payer_chart(frame: pd.DataFrame) -> go.Figure:
    """A/R per payer (``ar_aging`` rows), one stacked horizontal bar per payer by bucket."""
    payers = (
        frame.groupby("payer", observed=True)["balance"].sum().sort_values().index.astype(str)
        if not frame.empty
        else pd.Index([])
    )
    fig = _figure("A/R aging by payer", [PAYER, BUCKET], height=_bar_height(len(payers)))
    if frame.empty:
        return _empty(fig, "No open balances")
    grouped = frame.groupby(["payer", "bucket"], observed=True)["balance"].sum()
    for bucket, colour in zip(AGING_BUCKETS, _BUCKET_COLOURS, strict=True):
        cents = [int(grouped.get((p, bucket), 0)) for p in payers]
        if not any(cents):
            continue
        fig.add_trace(
            go.Bar(
                y=list(payers),
                x=_dollars(cents),
                orientation="h",
                name=f"{bucket} days",
                marker_color=colour,
                customdata=[[p, bucket] for p in payers],
                hovertemplate=f"%{{y}}, {bucket} days: $%{{x:,.2f}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="stack", xaxis={"tickprefix": "$", "tickformat": ",.0f"})
    fig.update_yaxes(type="category", automargin=True)
    return fig


def payer_mix_chart(frame: pd.DataFrame) -> go.Figure:
    """Share of charges and of payments by payer (``payer_mix``), labelled with dollars."""
    ordered = frame.sort_values("charges") if not frame.empty else frame
    payers = [str(p) for p in ordered["payer"]] if not frame.empty else []
    fig = _figure(
        "Payer mix: share of charges and payments", [PAYER], height=_bar_height(2 * len(payers))
    )
    if frame.empty:
        return _empty(fig, "No charges or payments in the range")
    for share, money, name, colour in (
        ("payments_share", "payments", "Payments", _GREEN),
        ("charges_share", "charges", "Charges", _BLUE),
    ):
        fig.add_trace(
            go.Bar(
                y=payers,
                x=[0.0 if pd.isna(v) else float(v) for v in ordered[share]],
                orientation="h",
                name=name,
                marker_color=colour,
                customdata=[[p] for p in payers],
                text=_money_text(ordered[money]),
                textposition="auto",
                hovertemplate=f"{name}, %{{y}}: %{{x:.1%}} (%{{text}})<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", xaxis={"tickformat": ".0%"})
    fig.update_layout(legend={"traceorder": "reversed"})
    fig.update_yaxes(type="category", automargin=True)
    return fig


def top_cpt_chart(frame: pd.DataFrame) -> go.Figure:
    """Top CPT codes (``top_cpt_codes``): charges, and paid per unit beside them."""
    ordered = frame.iloc[::-1] if not frame.empty else frame
    codes = [str(c) for c in ordered["code"]] if not frame.empty else []
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        column_widths=[0.62, 0.38],
        horizontal_spacing=0.04,
        subplot_titles=("Charges", "Paid per unit"),
    )
    _style(fig, "Top CPT codes by charges", [CODE], _bar_height(len(codes)))
    if frame.empty:
        return _empty(fig, "No charges in the range")
    custom = [[c] for c in codes]
    fig.add_trace(
        go.Bar(
            y=codes,
            x=_dollars(ordered["charges"]),
            orientation="h",
            name="Charges",
            marker_color=_BLUE,
            customdata=custom,
            text=[f"{u:g} units" for u in ordered["units"]],
            textposition="auto",
            hovertemplate="CPT %{y}: $%{x:,.2f} charged, %{text}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    per_unit = [0.0 if pd.isna(v) else float(v) / _CENTS for v in ordered["paid_per_unit"]]
    fig.add_trace(
        go.Bar(
            y=codes,
            x=per_unit,
            orientation="h",
            name="Paid per unit",
            marker_color=_GREEN,
            customdata=custom,
            text=[f"${v:,.2f}" for v in per_unit],
            textposition="auto",
            hovertemplate="CPT %{y}: $%{x:,.2f} paid per unit<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(showlegend=False)
    fig.update_xaxes(tickprefix="$", tickformat=",.0f")
    fig.update_yaxes(type="category", automargin=True)
    return fig


def denials_chart(frame: pd.DataFrame, status_labels: Mapping[str, str] | None = None) -> go.Figure:
    """Denied lines per service month (``denials_by_month``): colour = payer, pattern = status.

    Every month of the frame's span is on the axis; ``status_labels`` names the statuses.
    """
    combos = 0 if frame.empty else len(frame.groupby(["payer", "claim_status"], observed=True))
    height = CHART_HEIGHT_PX + _LEGEND_ENTRY_PX * combos  # room for the legend under the plot
    fig = _figure("Denied lines by month, payer and status", [MONTH, PAYER, STATUS], height=height)
    if frame.empty:
        return _empty(fig, "No denials in the range")
    labels = status_labels or {}
    span = pd.date_range(frame["month"].min(), frame["month"].max(), freq="MS")
    axis = [_short_month(m) for m in span]
    payers = sorted({str(p) for p in frame["payer"]})
    statuses = sorted({str(s) for s in frame["claim_status"]})
    for (payer, status), rows in frame.groupby(["payer", "claim_status"], observed=True):
        colour = _SERIES_COLOURS[payers.index(str(payer)) % len(_SERIES_COLOURS)]
        pattern = _PATTERNS[statuses.index(str(status)) % len(_PATTERNS)]
        status_name = labels.get(str(status), str(status))
        fig.add_trace(
            go.Bar(
                x=[_short_month(m) for m in rows["month"]],
                y=[int(n) for n in rows["denied_lines"]],
                name=f"{payer} · {status_name}",
                legendgroup=str(payer),
                marker={"color": colour, "pattern": {"shape": pattern}},
                customdata=[[_month_key(m), str(payer), str(status)] for m in rows["month"]],
                text=_money_text(rows["denied_charges"]),
                hovertemplate=(
                    f"{payer} · {status_name}, %{{x}}: %{{y}} lines (%{{text}})<extra></extra>"
                ),
                textposition="none",
            )
        )
    tallest = int(frame.groupby("month")["denied_lines"].sum().max())
    # Whole lines only: a unit tick while counts are small, Plotly's own ticks beyond.
    dtick = 1 if tallest <= _UNIT_TICKS_UP_TO else None
    fig.update_layout(barmode="stack", yaxis={"title": "denied lines", "dtick": dtick})
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=axis, tickangle=0)
    return fig


def provider_chart(frame: pd.DataFrame, names: Mapping[int, str] | None = None) -> go.Figure:
    """Charges and payments per provider (``provider_productivity``), visits in the label."""
    ordered = frame.sort_values("charges") if not frame.empty else frame
    names = names or {}
    ids = [int(d) for d in ordered["doctor_id"]] if not frame.empty else []
    labels = [names.get(d, f"Provider {d}") for d in ids]
    fig = _figure("Provider productivity", [DOCTOR], height=_bar_height(2 * len(ids)))
    if frame.empty:
        return _empty(fig, "No provider activity in the range")
    custom = [[str(d)] for d in ids]
    visits = [f"{int(v)} visits" for v in ordered["visits"]]
    for column, name, colour in (("payments", "Payments", _GREEN), ("charges", "Charges", _BLUE)):
        fig.add_trace(
            go.Bar(
                y=labels,
                x=_dollars(ordered[column]),
                orientation="h",
                name=name,
                marker_color=colour,
                customdata=custom,
                text=visits if column == "charges" else _money_text(ordered[column]),
                textposition="auto",
                hovertemplate=f"{name}, %{{y}}: $%{{x:,.2f}}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        xaxis={"tickprefix": "$", "tickformat": ",.0f"},
        legend={"traceorder": "reversed"},
    )
    fig.update_yaxes(type="category", automargin=True)
    return fig
