"""Hypothesis: a random registry (synthetic residents of any seed and size, then random
adjustments) snapshotted and restored gives the same digest and the same rows."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutru.backup.restore import restore_snapshot
from cutru.backup.snapshot import take_snapshot
from cutru.config import Settings
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory
from tests.conftest import Clock

from .test_snapshot import adjust, new_db, new_repo, person_keys, seed, tables


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(persons=st.integers(1, 40), seed_value=st.integers(0, 10_000),
       changes=st.integers(0, 5))
def test_random_registry_round_trips(persons: int, seed_value: int, changes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reg = Registry(Settings(data_dir=root / "data", key_dir=root / "keys"), clock=Clock(),
                       new_key=KeyFactory(random.Random(seed_value).getrandbits))
        try:
            reg.init()
            seed(reg, persons, seed_value)
            if changes:
                adjust(reg, person_keys(reg, changes), "nghề")
            repo = new_repo()
            assert reg.signing_key is not None
            snap = take_snapshot(reg.db, repo, reg.signing_key)
            target = new_db(root)
            try:
                result = restore_snapshot(repo, snap.name, target,
                                          public_keys=reg.public_keys())
                assert result.digest == snap.position.state_digest
                assert tables(target) == tables(reg.db)
            finally:
                target.dispose()
        finally:
            reg.close()
