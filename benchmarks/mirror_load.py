"""Mirror load: line items from the encrypted mirror into a DataFrame, vs plain typed columns.

The same rows are stored twice in one SQLite database: as the mirror stores them (Fernet batches
of 1,000 compressed JSON rows, ``storage.mirror``) and as a plain table of typed columns. The
candidate is what the Billing page does (``load_columns`` then ``frames.line_items_frame``); the
baseline is ``pandas.read_sql_table`` of the plain table with its dates parsed. Targets (issue
7): at most 2x the baseline, and at most 1 s.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from cryptography.fernet import Fernet

from benchmarks.harness import Record, RunContext, interleaved
from benchmarks.harness import make_record as rec
from benchmarks.synthetic import line_item_rows
from ehr.analytics.frames import line_items_frame
from storage import mirror
from storage.crypto import Cipher
from storage.database import create_schema, make_engine

ROWS = 100_000
QUICK_ROWS = 20_000
BATCH_ROWS = 1_000
TARGET_RATIO = 2.0
TARGET_SECONDS = 1.0
DATE_COLUMNS = ["service_date", "posted_date", "updated_at"]


def run(ctx: RunContext) -> list[Record]:
    count = QUICK_ROWS if ctx.quick else ROWS
    rows = line_item_rows(count)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'mirror.db'}")
        create_schema(engine)
        cipher = Cipher([Fernet.generate_key()])
        ctx.progress(f"mirror_load: writing {count:,} rows in {BATCH_ROWS:,}-row batches")
        state = mirror.load_state(engine, cipher, "line_item")
        now = datetime.now(UTC)
        for start in range(0, count, BATCH_ROWS):
            state = mirror.commit_page(
                engine, cipher, state, rows=rows[start : start + BATCH_ROWS], now=now
            )
        plain = pd.DataFrame.from_records(rows).drop(columns=["modifiers"], errors="ignore")
        plain.to_sql("plain_line_items", engine, index=False, chunksize=10_000)

        def from_mirror() -> object:
            return line_items_frame(mirror.load_columns(engine, cipher, "line_item"))

        def from_plain_table() -> object:
            return pd.read_sql_table("plain_line_items", engine, parse_dates=DATE_COLUMNS)

        ctx.progress("mirror_load: timing")
        times = interleaved({"mirror": from_mirror, "plain": from_plain_table}, ctx.runs, warmup=1)
        engine.dispose()
    note = f"{count:,} line items, Fernet batches of {BATCH_ROWS:,} rows, SQLite"
    return [
        rec("mirror_load.plain_table", times["plain"], "s", note=note),
        rec(
            "mirror_load.encrypted_mirror",
            times["mirror"],
            "s",
            baseline=("mirror_load.plain_table", times["plain"]),
            target=TARGET_RATIO,
        ),
        rec("mirror_load.encrypted_mirror.absolute", times["mirror"], "s", target=TARGET_SECONDS),
    ]
