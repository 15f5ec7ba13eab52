"""Hypothesis: random sequences of operations keep every invariant of domain.md §3, refused
operations write nothing, and rebuilding from the journal gives the live digest."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cutru.config import Settings
from cutru.errors import InputError, RuleViolation
from cutru.services.registry import Registry
from cutru.services.unit import KeyFactory
from cutru.store.schema import household_members, households, residences
from tests.conftest import Clock
from tests.helpers import BA_DINH, BASIS, HOAN_KIEM, OFFICER, SAI_GON, person

COMMUNES = [HOAN_KIEM, BA_DINH, SAI_GON]
RELS = ["spouse", "child", "parent", "sibling", "other_relative"]

op = st.one_of(
    st.tuples(st.just("found"), st.integers(1940, 2020), st.sampled_from(COMMUNES)),
    st.tuples(st.just("join"), st.integers(0, 30), st.integers(0, 30), st.sampled_from(RELS)),
    st.tuples(st.just("temporary"), st.integers(0, 30), st.sampled_from(COMMUNES),
              st.integers(30, 900)),
    st.tuples(st.just("extend"), st.integers(0, 30), st.integers(1, 800)),
    st.tuples(st.just("untemp"), st.integers(0, 30)),
    st.tuples(st.just("head"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("separate"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("death"), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("adjust"), st.integers(0, 30), st.text(max_size=8)),
)


def _pick(items: list[str], i: int) -> str | None:
    return items[i % len(items)] if items else None


def apply(reg: Registry, people: list[str], step: tuple[Any, ...]) -> None:
    kind = step[0]
    if kind == "found":
        p = person("Người Thử", f"{step[1]}-05-05", random.Random(step[1]).choice(
            ["male", "female"]))
        key = reg.declare_person(OFFICER, BASIS, p)
        people.append(key)
        reg.register_permanent(OFFICER, BASIS, key, basis="own_residence",
                               commune_code=step[2], street=f"{len(people)} Phố Huế",
                               start="2026-01-01")
        return
    who = _pick(people, step[1])
    if who is None:
        return
    if kind == "join":
        other = _pick(people, step[2])
        hh = reg.person(other)["household"] if other else None
        if hh:
            reg.register_permanent(OFFICER, BASIS, who, basis="relative",
                                   household_key=hh["key"], relationship=step[3],
                                   head_consent=True, owner_consent=True,
                                   start="2026-02-01", commune_code="", street="")
    elif kind == "temporary":
        reg.register_temporary(OFFICER, BASIS, who, commune_code=step[2], street="9 Trần Phú",
                               start="2026-03-01", term_end=f"{2026 + step[3] // 365}-12-01",
                               guardian_consent=True)
    elif kind == "extend":
        reg.extend_temporary(OFFICER, BASIS, who, new_term_end=f"{2028 + step[2] // 365}-06-01",
                             applied_on="2026-04-01")
    elif kind == "untemp":
        reg.deregister_temporary(OFFICER, BASIS, who, reason="rental_ended", on="2026-05-01")
    elif kind == "head":
        hh = reg.person(who)["household"]
        if hh:
            rels = {m["person_key"]: "other_relative" for m in hh["members"]}
            reg.change_head(OFFICER, BASIS, hh["key"], who, rels)
    elif kind == "separate":
        hh = reg.person(who)["household"]
        if hh:
            reg.separate_household(OFFICER, BASIS, hh["key"], member_keys=[who],
                                   new_head_key=who, relationships={}, head_consent=True,
                                   owner_consent=True)
    elif kind == "death":
        hh = reg.person(who)["household"]
        heir = _pick([m["person_key"] for m in hh["members"] if m["person_key"] != who]
                     if hh else [], step[2])
        rels = {m["person_key"]: "other_relative" for m in hh["members"]} if hh else {}
        reg.record_death(OFFICER, BASIS, who, on="2026-06-01", new_head_key=heir,
                         relationships=rels)
    elif kind == "adjust":
        reg.adjust_information(OFFICER, BASIS, who, {"occupation": step[2] or None})


def check_invariants(reg: Registry) -> None:
    with reg.db.read() as conn:
        members = [dict(r) for r in conn.execute(select(household_members)).mappings()]
        hhs = {r["key"]: dict(r) for r in conn.execute(select(households)).mappings()}
        res = [dict(r) for r in conn.execute(
            select(residences).where(residences.c.status == "active")).mappings()]
    for key, hh in hhs.items():
        heads = [m for m in members if m["household_key"] == key and m["relationship"] == "head"]
        assert len(heads) == 1 and heads[0]["person_key"] == hh["head_key"]
    assert all(m["household_key"] in hhs for m in members)
    by_person: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in res:
        by_person.setdefault(r["person_key"], {}).setdefault(r["kind"], []).append(r)
    member_of = {m["person_key"]: m["household_key"] for m in members}
    for pk, kinds in by_person.items():
        assert len(kinds.get("permanent", [])) <= 1
        assert len(kinds.get("temporary", [])) <= 1
        if kinds.get("permanent") and kinds.get("temporary"):
            assert kinds["permanent"][0]["commune_code"] != kinds["temporary"][0]["commune_code"]
        if kinds.get("permanent"):
            assert member_of.get(pk) == kinds["permanent"][0]["household_key"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=25))
def test_random_histories_keep_invariants_and_rebuild_to_the_live_digest(
        steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(data_dir=Path(tmp) / "data", key_dir=Path(tmp) / "keys",
                     checkpoint_interval=4)
        reg = Registry(s, clock=Clock(), new_key=KeyFactory(random.Random(0).getrandbits))
        reg.init()
        people: list[str] = []
        try:
            for step in steps:
                before = reg.journal_length()
                try:
                    apply(reg, people, step)
                    event(f"{step[0]} applied" if reg.journal_length() > before else
                          f"{step[0]} no-op")
                except (RuleViolation, InputError) as exc:
                    event(f"{step[0]} refused: {exc.rule}")
                    assert reg.journal_length() == before
                check_invariants(reg)
            report = reg.verify()
            assert report.ok, report.problems
            assert reg.rebuild() == report.digest
            assert reg.verify().ok
        finally:
            reg.close()
