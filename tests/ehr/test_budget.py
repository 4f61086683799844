"""``StoredBudget``: the shared hourly call budget as the transport's ``BudgetGate`` (RL-01)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ehr.budget import StoredBudget
from ehr.errors import RateLimitedError
from ehr.transport import EHRTransport
from storage.database import create_schema, make_engine
from storage.tokens import budget_state
from tests.ehr.test_oauth_callback import T0, FakeClock, sandbox_env

LIMIT = 500
CONNECTION_ID = 7
NEXT_HOUR = T0.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'budget.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


def test_spends_until_the_limit_then_refuses_without_taking_anything(engine: Engine) -> None:
    clock = FakeClock(T0 + timedelta(minutes=25))
    budget = StoredBudget(engine, CONNECTION_ID, limit=3, clock=clock)
    for _ in range(3):
        budget.spend()

    with pytest.raises(RateLimitedError) as caught:
        budget.spend()

    assert caught.value.retry_at == NEXT_HOUR
    assert caught.value.details == {"source": "hourly_budget", "retry_at": NEXT_HOUR.isoformat()}
    assert budget_state(engine, CONNECTION_ID, limit=3, now=clock()).calls == 3

    clock.set(NEXT_HOUR)  # a new window
    budget.spend()
    assert budget_state(engine, CONNECTION_ID, limit=3, now=clock()).calls == 1


def test_one_warning_when_the_spend_crosses_ninety_percent(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ehr.budget")
    budget = StoredBudget(engine, CONNECTION_ID, limit=LIMIT, clock=FakeClock())
    budget.spend(449)
    assert caplog.records == []

    budget.spend(1)
    budget.spend(1)

    [record] = caplog.records
    assert record.getMessage().startswith(f"hourly EHR call budget at 450 of {LIMIT}")
    assert f"connection_id={CONNECTION_ID}" in record.getMessage()


def test_a_spend_jumping_over_the_threshold_also_warns(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ehr.budget")
    budget = StoredBudget(engine, CONNECTION_ID, limit=10, clock=FakeClock())
    budget.spend(8)
    budget.spend(2)
    assert len(caplog.records) == 1


def test_a_limit_below_one_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="at least one"):
        StoredBudget(engine, CONNECTION_ID, limit=0)


def test_a_spent_budget_stops_the_transport_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the sandbox is plain http on loopback
    with sandbox_env(tmp_path) as env:
        connection_id = env.connect().connection_id
        budget = StoredBudget(env.engine, connection_id, limit=2)
        transport = EHRTransport(
            env.config.base_url, env.tokens(connection_id), budget=budget, sleep=lambda _s: None
        )
        try:
            assert transport.get_json("/api/users/current")["username"] == "demo"  # 302 + 200
            assert transport.requests_made == 2
            api_calls = env.requests_to("GET", "/api/")

            with pytest.raises(RateLimitedError) as caught:
                transport.get_json("/api/patients")

            assert caught.value.details["source"] == "hourly_budget"
            assert caught.value.retry_at is not None
            assert transport.requests_made == 2
            assert env.requests_to("GET", "/api/") == api_calls
        finally:
            transport.close()
