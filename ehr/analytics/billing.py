"""Revenue-cycle KPIs over the typed frames of ``ehr.analytics.frames`` (plain pandas).

Definitions follow ``KPIS.md`` section 4.1; ``KPI_FORMULAS`` holds the formula and date basis
shown next to each tile. The choices below are fixed so figures stay comparable month to month:

Date basis
    * **charges** (``billed``) by the line item's **service date**;
    * **payments** (insurance ``ins_paid`` + patient ``amount``, refunds negative) and
      **adjustments** (transaction ``adjustment``) by their **posted date**;
    * **A/R** is the mirror's *current* balances (the API keeps no balance history) of line
      items serviced on or before ``as_of`` (default: the range end), **aged from the
      appointment's first-billed date, else the service date**;
    * days in A/R uses a **90-day** charge look-back ending on ``as_of``; the net collection
      rate is **12-month rolling** (365 days ending on the range end), as MGMA quotes it;
    * denials by **service date**.

Dimensions
    Office, payer and first-billed date come from the line item's appointment. The **payer** of
    every money row is the visit's primary insurer (its financial class), so charges and
    payments line up per payer: a visit without an insurer is ``SELF_PAY``, a row that cannot
    be linked to a visit uses the transaction's own payer name, else ``UNLINKED``. Transactions
    and patient payments get CPT code and claim status through their line item.

Definitions
    * A/R counts debit balances only (insurer and patient parts apart); credit balances are
      reported separately and left out of "Total A/R − credit balances".
    * Contractual adjustments are those with group code ``CO``.
    * A claim is a visit's line items (a line item without a visit is its own claim). It is
      *submitted* once it has a claim status other than "incomplete information" (unknown
      statuses included and counted), and *denied* when a line is flagged denied or its
      status is ERA-denied or payer-rejected. Clearinghouse rejections are not denials.

Data quality
    A money value that is None is never read as 0: the row is left out of that sum and counted
    in the result's ``skipped``. A ratio with a zero (or negative) denominator is None, never
    NaN or infinity; share columns are nullable ``Float64`` with ``<NA>`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from ehr.analytics import grouping
from ehr.analytics.billing_data import (
    SELF_PAY,
    UNLINKED,
    BillingData,
    BillingFilters,
    billing_data,
)
from ehr.analytics.billing_formulas import KPI_FORMULAS, KpiFormula
from ehr.models import ClaimStatus

__all__ = [
    "AGING_BUCKETS",
    "AR_LOOKBACK_DAYS",
    "KPI_FORMULAS",
    "NET_COLLECTION_WINDOW_DAYS",
    "SELF_PAY",
    "UNLINKED",
    "Adjustments",
    "Amount",
    "BillingData",
    "BillingFilters",
    "Breakdown",
    "DaysInAR",
    "DenialRate",
    "KpiFormula",
    "Payments",
    "Ratio",
    "adjustments",
    "ar_aging",
    "ar_over_90",
    "ar_over_90_by_payer",
    "billing_data",
    "charges",
    "days_in_ar",
    "denial_rate",
    "denials_by_month",
    "gross_collection_rate",
    "monthly_totals",
    "net_collection_rate",
    "payer_mix",
    "payments",
    "provider_productivity",
    "top_cpt_codes",
]

# The look-back for average daily charges in days in A/R (PCC's 90-day sample; AAFP/MGMA allow
# 3, 6 or 12 months: fixed here so the figure is comparable month to month).
AR_LOOKBACK_DAYS: Final = 90
# Net collection rate is quoted 12-month rolling (MGMA via eMDs, AAFP).
NET_COLLECTION_WINDOW_DAYS: Final = 365
# Upper bound (days, inclusive) of each aging bucket; the last is open-ended.
_BUCKET_EDGES: Final = (30, 60, 90, 120)
AGING_BUCKETS: Final = ("0-30", "31-60", "61-90", "91-120", "120+")
# Aged A/R (HFMA MAP AR-1/AR-2) is older than 90 days: this bucket and the ones after it.
_FIRST_AGED_BUCKET: Final = "91-120"
_BUCKET: Final = pd.CategoricalDtype(list(AGING_BUCKETS), ordered=True)
CONTRACTUAL_GROUP_CODES: Final = frozenset({"CO"})
DENIAL_STATUSES: Final = frozenset({ClaimStatus.ERA_DENIED.value, ClaimStatus.REJECTED_PAYER.value})
# A claim still missing data has not been sent, so it is not in the denial denominator.
_NOT_SUBMITTED: Final = frozenset({ClaimStatus.INCOMPLETE_INFORMATION.value})
_KNOWN_CLAIM_STATUSES: Final = frozenset(s.value for s in ClaimStatus)
INSURER: Final = "insurer"
PATIENT: Final = "patient"
_RESPONSIBILITY: Final = pd.CategoricalDtype([INSURER, PATIENT], ordered=True)
DEFAULT_TOP_CODES: Final = 10
# The columns each KPI reads: scoping copies only these.
_CLAIM_COLUMNS: Final = ["id", "visit", "billed", "claim_status", "denied"]
_ADJUSTMENT_COLUMNS: Final = ["adjustment", "adjustment_group_code"]
_AR_COLUMNS: Final = ["payer", "balance_ins", "balance_pt", "first_billed_date", "service_date"]


@dataclass(frozen=True, slots=True)
class Amount:
    """A sum of cents over ``rows`` rows; ``skipped`` in-scope rows had no amount (None)."""

    cents: int
    rows: int
    skipped: int


@dataclass(frozen=True, slots=True)
class Payments:
    """Insurance and patient payments for the range."""

    insurance: Amount
    patient: Amount

    @property
    def total_cents(self) -> int:
        """Insurance plus patient payments."""
        return self.insurance.cents + self.patient.cents

    @property
    def skipped(self) -> int:
        """Payments left out because their amount was None."""
        return self.insurance.skipped + self.patient.skipped


@dataclass(frozen=True, slots=True)
class Adjustments:
    """All adjustments, and the contractual (group ``CO``) part of them."""

    total: Amount
    contractual: Amount


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator ÷ denominator`` over [start, end]; None when the denominator is not positive."""

    value: float | None
    numerator: int
    denominator: int
    start: date
    end: date
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class DaysInAR:
    """Days in A/R as of a date, with its parts (cents)."""

    days: float | None
    ar_cents: int
    credit_cents: int
    lookback_charges_cents: int
    as_of: date
    lookback_days: int = AR_LOOKBACK_DAYS
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class DenialRate:
    """Denial rate by claim count and by dollars."""

    by_count: Ratio
    by_dollars: Ratio
    unknown_statuses: int


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A small result table and how many rows were left out for a None amount."""

    frame: pd.DataFrame
    skipped: int = 0


def charges(data: BillingData, filters: BillingFilters) -> Amount:
    """Gross charges (Σ billed) for line items serviced in the range."""
    return _amount(_charge_rows(data, filters, ["billed"])["billed"])


def payments(data: BillingData, filters: BillingFilters) -> Payments:
    """Insurance and patient payments posted in the range."""
    insurance = data.rows("transactions", filters, "posted_date", ["ins_paid"])
    patient = data.rows("patient_payments", filters, "posted_date", ["amount"])
    return Payments(_amount(insurance["ins_paid"]), _amount(patient["amount"]))


def adjustments(data: BillingData, filters: BillingFilters) -> Adjustments:
    """Adjustments posted in the range, all and contractual."""
    rows = data.rows("transactions", filters, "posted_date", _ADJUSTMENT_COLUMNS)
    contractual = rows["adjustment_group_code"].isin(list(CONTRACTUAL_GROUP_CODES))
    return Adjustments(_amount(rows["adjustment"]), _amount(rows.loc[contractual, "adjustment"]))


def gross_collection_rate(data: BillingData, filters: BillingFilters) -> Ratio:
    """Payments ÷ gross charges for the range (see ``KPI_FORMULAS``)."""
    paid, billed = payments(data, filters), charges(data, filters)
    return _ratio(paid.total_cents, billed.cents, filters, paid.skipped + billed.skipped)


def net_collection_rate(data: BillingData, filters: BillingFilters) -> Ratio:
    """(Payments − refunds) ÷ (charges − contractual adjustments), 12 months to the range end."""
    start = filters.end - timedelta(days=NET_COLLECTION_WINDOW_DAYS - 1)
    window = replace(filters, start=start)
    paid, billed = payments(data, window), charges(data, window)
    contractual = adjustments(data, window).contractual
    skipped = paid.skipped + billed.skipped + contractual.skipped
    return _ratio(paid.total_cents, billed.cents - contractual.cents, window, skipped)


def days_in_ar(data: BillingData, filters: BillingFilters, as_of: date | None = None) -> DaysInAR:
    """(A/R − credits) ÷ average daily charges over the 90 days ending ``as_of``."""
    as_of = as_of or filters.end
    owed, skipped = _aged(data, filters, as_of)
    lookback_start = as_of - timedelta(days=AR_LOOKBACK_DAYS - 1)
    lookback = charges(data, replace(filters, start=lookback_start, end=as_of))
    ar = int(owed[INSURER].sum() + owed[PATIENT].sum())
    daily = lookback.cents / AR_LOOKBACK_DAYS
    return DaysInAR(
        days=ar / daily if daily > 0 else None,
        ar_cents=ar,
        credit_cents=int(owed["credit"].sum()),
        lookback_charges_cents=lookback.cents,
        as_of=as_of,
        skipped=skipped + lookback.skipped,
    )


def ar_aging(data: BillingData, filters: BillingFilters, as_of: date | None = None) -> Breakdown:
    """A/R by payer, responsibility (insurer/patient) and bucket, with share of total A/R.

    Columns: ``payer``, ``responsibility`` and ``bucket`` (ordered categories, buckets
    ``AGING_BUCKETS``), ``balance`` (cents), ``share`` (Float64, of all A/R in scope). Empty
    combinations are left out.
    """
    owed, skipped = _aged(data, filters, as_of or filters.end)
    by_bucket = owed.groupby(["payer", "bucket"], observed=True)[[INSURER, PATIENT]].sum()
    table = by_bucket.reset_index().melt(
        id_vars=["payer", "bucket"],
        value_vars=[INSURER, PATIENT],
        var_name="responsibility",
        value_name="balance",
    )
    table = table[table["balance"] > 0].astype({"balance": "int64"})
    table["responsibility"] = table["responsibility"].astype(_RESPONSIBILITY)
    table = table.sort_values(["payer", "responsibility", "bucket"], ignore_index=True)
    table["share"] = _share(table["balance"], int(table["balance"].sum()))
    return Breakdown(table[["payer", "responsibility", "bucket", "balance", "share"]], skipped)


def ar_over_90(data: BillingData, filters: BillingFilters, as_of: date | None = None) -> Ratio:
    """A/R older than 90 days ÷ total A/R, as of ``as_of`` (default: the range end)."""
    owed, skipped = _aged(data, filters, as_of or filters.end)
    debit = owed[INSURER] + owed[PATIENT]
    aged = int(debit[_is_aged(owed)].sum())
    return _ratio(aged, int(debit.sum()), filters, skipped)


def ar_over_90_by_payer(
    data: BillingData, filters: BillingFilters, as_of: date | None = None
) -> Breakdown:
    """Per payer with A/R: ``ar``, ``over_90`` (cents) and ``share`` (Float64)."""
    owed, skipped = _aged(data, filters, as_of or filters.end)
    debit = owed[INSURER] + owed[PATIENT]
    parts = pd.DataFrame({"payer": owed["payer"], "ar": debit, "over_90": debit * _is_aged(owed)})
    table = parts.groupby("payer", observed=True)[["ar", "over_90"]].sum().reset_index()
    table = table[table["ar"] > 0].astype({"ar": "int64", "over_90": "int64"})
    table["share"] = _ratios(table["over_90"], table["ar"])
    return Breakdown(table.reset_index(drop=True), skipped)


def denial_rate(data: BillingData, filters: BillingFilters) -> DenialRate:
    """Denied ÷ submitted claims (count) and denied $ ÷ submitted $ for services in the range."""
    rows, denied = _claim_lines(data, filters)
    claims = _claim_keys(rows)
    billed = _amount(rows["billed"])
    denied_billed = _amount(rows.loc[denied, "billed"])
    # isin on the categories themselves: converting a million statuses to text costs 0.1 s.
    known = rows["claim_status"].isin(list(_KNOWN_CLAIM_STATUSES))
    return DenialRate(
        by_count=_ratio(claims[denied].nunique(), claims.nunique(), filters),
        by_dollars=_ratio(denied_billed.cents, billed.cents, filters, billed.skipped),
        unknown_statuses=int((~known).sum()),
    )


def payer_mix(data: BillingData, filters: BillingFilters) -> Breakdown:
    """Per payer: ``charges``, ``charges_share``, ``payments``, ``payments_share``, ``visits``."""
    billed = _charge_rows(data, filters, ["payer", "billed", "visit"])
    paid = _payment_rows(data, filters)
    table = pd.concat(
        [
            grouping.sum_by(billed, "payer", "billed").rename("charges"),
            grouping.sum_by(paid, "payer", "amount").rename("payments"),
            grouping.visits_by(billed, "payer").rename("visits"),
        ],
        axis=1,
    )
    table = table.fillna(0).astype("int64").rename_axis("payer").reset_index()
    table["charges_share"] = _share(table["charges"], int(table["charges"].sum()))
    table["payments_share"] = _share(table["payments"], int(table["payments"].sum()))
    columns = ["payer", "charges", "charges_share", "payments", "payments_share", "visits"]
    skipped = _skipped(billed["billed"]) + _skipped(paid["amount"])
    return Breakdown(table[columns].sort_values("charges", ascending=False), skipped)


def top_cpt_codes(
    data: BillingData, filters: BillingFilters, limit: int = DEFAULT_TOP_CODES
) -> Breakdown:
    """The ``limit`` codes with the most charges: ``code``, ``units``, ``charges``, ``paid``
    (cents, Σ ``paid_total`` of those lines) and ``paid_per_unit`` (Float64 cents)."""
    rows = _charge_rows(data, filters, ["code", "quantity", "billed", "paid_total"])
    complete = rows["billed"].notna() & rows["paid_total"].notna()
    table = (
        rows[complete]
        .groupby("code", observed=True)
        .agg(units=("quantity", "sum"), charges=("billed", "sum"), paid=("paid_total", "sum"))
        .reset_index()
        .astype({"charges": "int64", "paid": "int64"})
    )
    table["paid_per_unit"] = _ratios(table["paid"], table["units"])
    table = table.sort_values(["charges", "code"], ascending=[False, True]).head(limit)
    return Breakdown(table.reset_index(drop=True), skipped=int((~complete).sum()))


def denials_by_month(data: BillingData, filters: BillingFilters) -> Breakdown:
    """Denied lines by service ``month``, ``payer`` and ``claim_status``:
    ``denied_lines`` (count) and ``denied_charges`` (cents, Σ billed of lines with an amount)."""
    rows, denied = _claim_lines(data, filters)
    rows = rows[denied].assign(month=lambda r: grouping.month(r["service_date"]))
    table = (
        rows.groupby(["month", "payer", "claim_status"], observed=True)
        .agg(denied_lines=("id", "size"), denied_charges=("billed", "sum"))
        .reset_index()
        .astype({"denied_lines": "int64", "denied_charges": "int64"})
    )
    return Breakdown(table, skipped=_skipped(rows["billed"]))


def provider_productivity(data: BillingData, filters: BillingFilters) -> Breakdown:
    """Per ``doctor_id``: ``charges``, ``payments`` (cents) and billed ``visits``; rows with no
    provider are left out."""
    billed = _charge_rows(data, filters, ["doctor_id", "billed", "visit"])
    paid = _payment_rows(data, filters)
    table = pd.concat(
        [
            grouping.sum_by(billed, "doctor_id", "billed").rename("charges"),
            grouping.sum_by(paid, "doctor_id", "amount").rename("payments"),
            grouping.visits_by(billed, "doctor_id").rename("visits"),
        ],
        axis=1,
    )
    table = table.fillna(0).astype("int64").rename_axis("doctor_id").reset_index()
    skipped = _skipped(billed["billed"]) + _skipped(paid["amount"])
    return Breakdown(table.sort_values("charges", ascending=False, ignore_index=True), skipped)


def monthly_totals(data: BillingData, filters: BillingFilters) -> Breakdown:
    """Every calendar ``month`` in the range with ``charges``, ``payments``, ``adjustments``."""
    billed = _charge_rows(data, filters, ["service_date", "billed"])
    paid = _payment_rows(data, filters)
    adjusted = data.rows("transactions", filters, "posted_date", ["posted_date", "adjustment"])
    months = pd.date_range(
        _month_start(filters.start), filters.end, freq="MS", unit="ns", name="month"
    )
    table = pd.DataFrame(
        {
            "charges": grouping.sum_by_month(billed, "service_date", "billed"),
            "payments": grouping.sum_by_month(paid, "posted_date", "amount"),
            "adjustments": grouping.sum_by_month(adjusted, "posted_date", "adjustment"),
        }
    )
    table = table.reindex(months, fill_value=0).fillna(0).astype("int64")
    skipped = sum(
        _skipped(f[c]) for f, c in ((billed, "billed"), (paid, "amount"), (adjusted, "adjustment"))
    )
    return Breakdown(table.rename_axis("month").reset_index(), skipped)


def _charge_rows(data: BillingData, filters: BillingFilters, columns: list[str]) -> pd.DataFrame:
    return data.rows("line_items", filters, "service_date", columns)


def _payment_rows(data: BillingData, filters: BillingFilters) -> pd.DataFrame:
    columns = ["doctor_id", "payer", "posted_date"]
    insurance = data.rows("transactions", filters, "posted_date", [*columns, "ins_paid"])
    patient = data.rows("patient_payments", filters, "posted_date", [*columns, "amount"])
    return pd.concat([insurance.rename(columns={"ins_paid": "amount"}), patient], ignore_index=True)


def _amount(values: pd.Series) -> Amount:
    present = values.dropna()
    return Amount(int(present.sum()), len(present), len(values) - len(present))


def _skipped(values: pd.Series) -> int:
    return int(values.isna().sum())


def _ratio(num: int, den: int, filters: BillingFilters, skipped: int = 0) -> Ratio:
    value = num / den if den > 0 else None
    return Ratio(value, int(num), int(den), filters.start, filters.end, skipped)


def _ratios(num: pd.Series, den: pd.Series) -> pd.Series:
    shares = num.astype("Float64") / den.astype("Float64")
    return shares.where(den > 0, pd.NA)


def _share(values: pd.Series, total: int) -> pd.Series:
    return _ratios(values, pd.Series(total, index=values.index))


def _month_start(day: date) -> pd.Timestamp:
    return pd.Timestamp(day.year, day.month, 1)


# --- A/R and denials ---------------------------------------------------------------------


def _aged(data: BillingData, filters: BillingFilters, as_of: date) -> tuple[pd.DataFrame, int]:
    """Debit balances (insurer, patient), credits and aging bucket of the A/R rows, and how
    many rows were skipped for a missing balance (kept on ``data``: four KPIs read it)."""
    return data.memo(("aged", filters, as_of), lambda: _age(data, filters, as_of))


def _age(data: BillingData, filters: BillingFilters, as_of: date) -> tuple[pd.DataFrame, int]:
    rows = data.rows("line_items", filters, "service_date", _AR_COLUMNS, end=as_of, open_start=True)
    known = rows["balance_ins"].notna() & rows["balance_pt"].notna()
    rows = rows[known]
    # Whole-column numpy: no NaT here, as every row has a service date up to ``as_of``.
    billed = rows["first_billed_date"].to_numpy()
    since = np.where(np.isnat(billed), rows["service_date"].to_numpy(), billed)
    age: Any = (np.datetime64(as_of, "D") - since.astype("datetime64[D]")).astype(np.int64)
    insurer = rows["balance_ins"].to_numpy(dtype=np.int64)
    patient = rows["balance_pt"].to_numpy(dtype=np.int64)
    owed = pd.DataFrame(
        {
            "payer": rows["payer"],
            "bucket": pd.Categorical.from_codes(
                np.searchsorted(_BUCKET_EDGES, age, side="left"), dtype=_BUCKET
            ),
            INSURER: np.maximum(insurer, 0),
            PATIENT: np.maximum(patient, 0),
            "credit": -(np.minimum(insurer, 0) + np.minimum(patient, 0)),
        },
        index=rows.index,
    )
    return owed, int((~known).sum())


def _is_aged(owed: pd.DataFrame) -> pd.Series:
    return owed["bucket"].cat.codes >= AGING_BUCKETS.index(_FIRST_AGED_BUCKET)


def _claim_lines(data: BillingData, filters: BillingFilters) -> tuple[pd.DataFrame, pd.Series]:
    """Submitted claim lines serviced in the range and which are denied (two KPIs read them)."""

    def compute() -> tuple[pd.DataFrame, pd.Series]:
        rows = _submitted(_charge_rows(data, filters, [*_CLAIM_COLUMNS, "payer", "service_date"]))
        return rows, _is_denied(rows)

    return data.memo(("claims", filters), compute)


def _submitted(rows: pd.DataFrame) -> pd.DataFrame:
    status = rows["claim_status"]
    sent = status.notna() & ~status.isin(list(_NOT_SUBMITTED))
    return rows[sent | rows["denied"]]


def _is_denied(rows: pd.DataFrame) -> pd.Series:
    return rows["denied"] | rows["claim_status"].isin(list(DENIAL_STATUSES))


def _claim_keys(rows: pd.DataFrame) -> pd.Series:
    # A line item without a visit is a claim of its own: a negative key no visit can have.
    return rows["visit"].where(rows["visit"] >= 0, -1 - rows["id"])
