"""schemathesis against the OpenAPI schema: no generated request causes a server error."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutru.access import identities
from cutru.access.principals import Principal, PrincipalKind, Unit
from cutru.api.app import create_app
from cutru.config import Settings
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory
from tests.access_db.server import serving
from tests.conftest import Clock
from tests.helpers import HOAN_KIEM
from tests.test_transactions import seed_family

PASSWORD = "mật-khẩu-thử-nghiệm"
TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    reg = Registry(Settings(data_dir=tmp / "data", key_dir=tmp / "keys"), clock=Clock(),
                   new_key=KeyFactory(random.Random(3).getrandbits))
    reg.init()
    seed_family(reg)
    officer = Principal("can-bo", PrincipalKind.OFFICER, Unit.commune(HOAN_KIEM))
    with reg.db.begin() as conn:
        identities.create_principal(conn, officer, password=PASSWORD, now=reg.clock())
    app = create_app(reg.settings, registry=reg)
    TOKEN["value"] = app.state.guard.login("can-bo", PASSWORD).token
    with serving(app) as base:
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")
    reg.close()


def test_no_server_errors(api_schema: Any) -> None:
    """Every operation, with generated parameters and bodies, signed in or not: never a 5xx."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), signed_in=st.booleans())
        def run(case: Any, signed_in: bool) -> None:
            headers = {"Authorization": f"Bearer {TOKEN['value']}"} if signed_in else {}
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.operation.label, response.text[:300])
            if response.status_code >= 400:
                body = response.json()
                assert {"error", "message"} <= set(body), (case.operation.label, body)

        run()
