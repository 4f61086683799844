"""The formula and date basis shown next to each billing KPI tile (from ``KPIS.md`` 4.1).

Keys are the names of the KPI functions in ``ehr.analytics.billing``; the page shows
``formula`` as the tile's caption or tooltip and ``date_basis`` beside the period, so a reader
always knows which dates a figure counts by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["KPI_FORMULAS", "KpiFormula"]


@dataclass(frozen=True, slots=True)
class KpiFormula:
    """What a KPI tile shows beside its value: a label, the formula and the date basis."""

    label: str
    formula: str
    date_basis: str


KPI_FORMULAS: Final[Mapping[str, KpiFormula]] = {
    "charges": KpiFormula("Charges", "Σ billed over line items", "service date"),
    "payments": KpiFormula(
        "Payments",
        "Σ insurance payments + Σ patient payments (refunds negative)",
        "posted date",
    ),
    "adjustments": KpiFormula(
        "Adjustments", "Σ transaction adjustments; contractual = group code CO", "posted date"
    ),
    "gross_collection_rate": KpiFormula(
        "Gross collection rate",
        "Total payments ÷ total gross charges (no adjustments); trend only",
        "payments by posted date, charges by service date",
    ),
    "net_collection_rate": KpiFormula(
        "Net collection rate",
        "(Payments − refunds) ÷ (charges − contractual adjustments) × 100",
        "12-month rolling to the range end; payments and adjustments by posted date, "
        "charges by service date",
    ),
    "days_in_ar": KpiFormula(
        "Days in A/R",
        "(Total A/R − credit balances) ÷ (charges in the last 90 days ÷ 90)",
        "current balances of items serviced by the as-of date; 90-day look-back by service date",
    ),
    "ar_aging": KpiFormula(
        "A/R aging",
        "Outstanding balance by age 0-30, 31-60, 61-90, 91-120, 120+ days; $ and % of total, "
        "insurer vs patient, by payer",
        "age from first-billed date, else service date, to the as-of date",
    ),
    "ar_over_90": KpiFormula(
        "A/R over 90 days",
        "A/R older than 90 days ÷ total A/R",
        "age from first-billed date, else service date, to the as-of date",
    ),
    "denial_rate": KpiFormula(
        "Denial rate",
        "Denied claims ÷ submitted claims (count), and denied $ ÷ submitted $",
        "service date",
    ),
    "payer_mix": KpiFormula(
        "Payer mix",
        "Share of charges and of payments by the visit's primary payer",
        "charges by service date, payments by posted date",
    ),
    "top_cpt_codes": KpiFormula(
        "Top CPT codes",
        "Σ billed by CPT; paid per unit = Σ paid on those lines ÷ Σ units",
        "service date",
    ),
    "denials_by_month": KpiFormula(
        "Denials by month", "Denied lines and $ by payer and claim status", "service month"
    ),
    "provider_productivity": KpiFormula(
        "Provider productivity",
        "Charges, payments and billed visits per provider",
        "charges and visits by service date, payments by posted date",
    ),
    "monthly_totals": KpiFormula(
        "Charges, payments and adjustments by month",
        "Σ per calendar month",
        "charges by service month, payments and adjustments by posted month",
    ),
}
