"""Synthetic billing rows in the mirror's row format (``ehr.analytics.records``), made fast.

For the mirror-load and KPI benchmarks: realistic spreads of codes, payers, dates and amounts,
reproducible for a seed, built with numpy rather than one model object per row.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np

CPT_CODES = ("99213", "99214", "99203", "93000", "36415", "81002", "90471", "99395", "87880")
PAYERS = ("Aetna", "Blue Cross", "Cigna", "Medicare", "Medicaid", "United", "Humana")
CLAIM_STATUSES = ("paid_in_full", "partially_paid", "in_process_payer", "era_denied", "")
START = date(2025, 1, 1)
DAYS = 540


def line_item_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` line-item rows over 18 months, 3 lines per visit, money in cents."""
    rng = np.random.default_rng(seed)
    price = rng.integers(2_000, 40_000, count)
    paid = (price * rng.uniform(0.0, 1.0, count)).astype(int)
    adjustment = (price * rng.uniform(0.0, 0.3, count)).astype(int)
    balance = np.maximum(price - paid - adjustment, 0)
    codes = rng.integers(0, len(CPT_CODES), count)
    statuses = rng.integers(0, len(CLAIM_STATUSES), count)
    days = rng.integers(0, DAYS, count)
    doctors = rng.integers(1, 9, count)
    rows = []
    for i in range(count):
        service = (START + timedelta(days=int(days[i]))).isoformat()
        status = CLAIM_STATUSES[statuses[i]]
        rows.append(
            {
                "id": i + 1,
                "appointment_id": f"A{i // 3 + 1}",
                "patient_id": i // 9 + 1,
                "doctor_id": int(doctors[i]),
                "code": CPT_CODES[codes[i]],
                "procedure_type": "C",
                "quantity": 1.0,
                "price": int(price[i]),
                "billed": int(price[i]),
                "allowed": int(price[i] - adjustment[i]),
                "expected_reimbursement": int(price[i] - adjustment[i]),
                "adjustment": int(adjustment[i]),
                "ins1_paid": int(paid[i]),
                "ins2_paid": 0,
                "ins3_paid": 0,
                "ins_total": int(paid[i]),
                "pt_paid": 0,
                "paid_total": int(paid[i]),
                "balance_ins": int(balance[i]),
                "balance_pt": 0,
                "balance_total": int(balance[i]),
                "claim_status": status or None,
                "insurance_status": None,
                "denied": status == "era_denied",
                "posted_date": service,
                "service_date": service,
                "updated_at": f"{service}T12:00:00+00:00",
            }
        )
    return rows


def appointment_rows(line_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One visit row per distinct appointment id of ``line_items``, with its payer."""
    seen: dict[str, dict[str, Any]] = {}
    for row in line_items:
        key = row["appointment_id"]
        if key in seen:
            continue
        payer = PAYERS[int(key[1:]) % len(PAYERS)]
        seen[key] = {
            "id": key,
            "doctor_id": row["doctor_id"],
            "office_id": 1 + row["doctor_id"] % 3,
            "patient_id": row["patient_id"],
            "scheduled_time": f"{row['service_date']}T14:00:00+00:00",
            "duration_minutes": 20,
            "status": "complete",
            "is_walk_in": False,
            "is_break": False,
            "is_deleted": False,
            "primary_insurer_name": payer,
            "primary_insurer_payer_id": f"P{PAYERS.index(payer)}",
            "first_billed_date": row["service_date"],
        }
    return list(seen.values())
