"""Abuse detection: reading far more distinct persons than the role does, or too fast,
throttles the principal and raises an alert that is recorded, listable and a metric."""

from __future__ import annotations

from typing import Any

import pytest

from cutru.access import abuse
from cutru.access.decision import Declaration
from cutru.access.policy import default_policy
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.api.metrics import render_metrics
from cutru.errors import Throttled
from cutru.services.guard import Guard
from cutru.services.registry import Registry
from tests.helpers import HOAN_KIEM
from tests.test_transactions import seed_family

DUTY = Declaration("registration", legal_basis="Law 68/2020/QH14")
OFFICER = Principal("can-bo-tò-mò", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM))
AUDITOR = Principal("kiem-toan", PrincipalKind.AUDITOR, Unit.national())
REVIEW = Declaration("audit_review", legal_basis="Decree 356/2025 Art. 4")


def test_reading_too_many_persons_throttles_and_alerts(registry: Registry, clock: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(abuse.DISTINCT_PER_HOUR, PrincipalKind.OFFICER, 2)
    guard = Guard(registry, default_policy())
    k = seed_family(registry)
    guard.read_person(OFFICER, DUTY, k["father"])
    guard.read_person(OFFICER, DUTY, k["mother"])
    guard.read_person(OFFICER, DUTY, k["mother"])  # the same person again is not breadth
    with pytest.raises(Throttled) as info:
        guard.read_person(OFFICER, DUTY, k["child"])
    assert info.value.reason == "denied.throttled.distinct_persons"
    with pytest.raises(Throttled):  # throttled for the window, even for a known person
        guard.read_person(OFFICER, DUTY, k["father"])
    alerts = guard.alerts(AUDITOR, REVIEW)
    assert [(a["principal"], a["rule"]) for a in alerts] == [(OFFICER.id, "distinct_persons")]
    assert alerts[0]["detail"] == {"distinct_persons_last_hour": 3, "limit": 2}
    text = render_metrics(guard.metrics())
    assert 'cutru_abuse_alerts{rule="distinct_persons"} 1.0' in text
    assert "cutru_throttled_principals 1.0" in text
    clock.advance(hours=1, seconds=1)
    guard.read_person(OFFICER, DUTY, k["child"])  # the window has passed


def test_request_rate_is_limited(registry: Registry, clock: Any) -> None:
    settings = registry.settings.model_copy(update={"rate_per_minute": 3})
    reg = Registry(settings, clock=clock, db=registry.db)
    guard = Guard(reg, default_policy())
    k = seed_family(reg)
    for _ in range(3):
        guard.read_person(OFFICER, DUTY, k["child"])
    with pytest.raises(Throttled) as info:
        guard.read_person(OFFICER, DUTY, k["child"])
    assert info.value.reason == "denied.throttled.rate"
