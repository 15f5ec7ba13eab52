"""A restored database is never swapped in under a running server."""

from __future__ import annotations

import pytest

from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.errors import ConfigError
from cutru.services import restore as rs
from cutru.services.recovery import Recovery
from cutru.services.registry import Registry


def test_swap_is_refused_while_serving(registry: Registry) -> None:
    head = Principal("head-1", PrincipalKind.COMMUNE_POLICE_HEAD, Unit.commune("00070"))
    with rs.serving(registry.settings):
        with pytest.raises(ConfigError) as refused:
            Recovery(registry).swap_in("sqlite:///nowhere.db", incident="INC-x",
                                       requested_by="auditor-1", approver=head,
                                       legal_basis="x")
        assert refused.value.details["rule"] == "restore.live_idle"
    rs.require_not_serving(registry.settings)  # released when the server stops
