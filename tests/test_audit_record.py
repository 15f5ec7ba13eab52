"""Audit records, signed tree heads, and verify_log finding every kind of tampering."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from cutru.errors import CheckpointInvalid, InputError
from cutru.journal import canonical, merkle
from cutru.journal.audit_record import (
    AuditProblem,
    AuditRecord,
    SignedTreeHead,
    TreeHead,
    citizen_can_see,
    decode_record,
    encode_record,
    record_leaf,
    sign_head,
    verify_head,
    verify_head_consistency,
    verify_log,
    verify_record_inclusion,
)
from cutru.journal.entry import format_ts
from cutru.journal.signing import Checkpoint, SigningKey
from tests.test_merkle import CT_LEAVES

# RFC 8032 §7.1, TEST 1: a published Ed25519 key pair, so the known answers below are stable.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
KEY = SigningKey(Ed25519PrivateKey.from_private_bytes(RFC8032_SEED))
KEYS = {KEY.key_id: KEY.public_key_bytes}
OTHER = SigningKey.generate()
# Known answers for make_record(1), also shown in docs/audit.md.
LEAF_1 = "74a6d17d90ca3cd051b3a87cb24a61a07b163ceeb9acc0c584e65fff0a1ed405"
HEAD_SIGNATURE_1 = (
    "a63cdab67d6a25f52a64b8dfa8507ebd69b519567c9ba546c76c78d4fae21382"
    "a41b46ec84e8f67e537f8595dd09c54cc3b67fff5f4ac1ffdc945456ffd78900"
)


def make_record(seq: int = 1, **changes: Any) -> AuditRecord:
    record = AuditRecord(
        seq=seq,
        ts=format_ts(datetime(2026, 1, 5, 8, tzinfo=UTC) + timedelta(seconds=seq)),
        principal="officer:hk-0042",
        principal_kind="officer",
        agency="CA-HN-HK",
        action="read",
        outcome="allowed",
        reason="allowed.duty",
        purpose_kind="duty",
        legal_basis="Law 68/2020 Art. 13",
        case_number=None,
        subjects=(f"P{seq:06d}",),
        fields=("birth_date", "full_name"),
        journal_seq=None,
        hidden_until=None,
        detail={"query": "by_key"},
    )
    return dataclasses.replace(record, **changes)


def make_log(n: int, every: int = 3) -> tuple[list[AuditRecord], list[SignedTreeHead]]:
    """n records with a signed head after every ``every`` records and after the last."""
    records = [make_record(i) for i in range(1, n + 1)]
    acc = merkle.MerkleAccumulator()
    heads = []
    for r in records:
        acc.append(record_leaf(r))
        if acc.size % every == 0 or acc.size == n:
            head = TreeHead(acc.size, acc.root().hex(), r.ts, KEY.key_id)
            heads.append(sign_head(head, KEY))
    return records, heads


def kinds(problems: list[AuditProblem]) -> list[str]:
    return [p.kind for p in problems]


def covers(problems: list[AuditProblem], seq: int) -> bool:
    """Whether some problem names a range of records holding ``seq``."""
    return any(p.first_seq is not None and p.last_seq is not None
               and p.first_seq <= seq <= p.last_seq for p in problems)


# --- records ---------------------------------------------------------------------------------

text = st.text(min_size=1, max_size=12)
sorted_sets = st.frozensets(text, max_size=4).map(lambda s: tuple(sorted(s)))
any_records = st.builds(
    AuditRecord,
    seq=st.integers(1, 2**63 - 1),
    ts=st.datetimes(min_value=datetime(2000, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    principal=text, principal_kind=text, agency=st.none() | text,
    action=st.sampled_from(["read", "search", "write", "deny", "login", "login_failed",
                            "logout", "policy_change", "key_use", "export", "consent.grant"]),
    outcome=st.sampled_from(["allowed", "denied"]), reason=text,
    purpose_kind=st.none() | text, legal_basis=st.none() | text, case_number=st.none() | text,
    subjects=sorted_sets, fields=sorted_sets,
    journal_seq=st.none() | st.integers(1, 2**63 - 1),
    hidden_until=st.none() | st.dates().map(date.isoformat),
    detail=st.dictionaries(text, st.text(max_size=20), max_size=4),
)


@given(any_records)
def test_records_round_trip(record: AuditRecord) -> None:
    data = encode_record(record)
    assert data == canonical.encode(canonical.decode(data))
    assert decode_record(data) == record
    assert record_leaf(record) == hashlib.sha256(b"\x00cutru-audit-v1\n" + data).digest()


def test_record_known_answer() -> None:
    # Pins the format: docs/audit.md shows these bytes and this leaf hash.
    record = make_record(1)
    assert encode_record(record) == (
        b'{"action":"read","agency":"CA-HN-HK","case_number":null,'
        b'"detail":{"query":"by_key"},"fields":["birth_date","full_name"],'
        b'"hidden_until":null,"journal_seq":null,"legal_basis":"Law 68/2020 Art. 13",'
        b'"outcome":"allowed","principal":"officer:hk-0042","principal_kind":"officer",'
        b'"purpose_kind":"duty","reason":"allowed.duty","seq":1,"subjects":["P000001"],'
        b'"ts":"2026-01-05T08:00:01.000000Z"}'
    )
    assert record_leaf(record).hex() == LEAF_1


@pytest.mark.parametrize(("field", "value"), [
    ("seq", 0), ("seq", True), ("seq", 2**63), ("journal_seq", 2**63),
    ("ts", "2026-01-05 08:30:00"), ("ts", "2026-13-05T08:30:00.000000Z"),
    ("principal", ""), ("principal_kind", None), ("agency", ""), ("action", "Read"),
    ("action", ""), ("outcome", "maybe"), ("reason", ""), ("purpose_kind", 3),
    ("legal_basis", ""), ("case_number", ""), ("subjects", ("b", "a")), ("subjects", ("a", "a")),
    ("subjects", ["a"]), ("fields", ("",)), ("journal_seq", 0), ("hidden_until", "2026-02-30"),
    ("hidden_until", "2026-1-5"), ("detail", {"k": 1}), ("detail", {"": "v"}),
    ("detail", {"k": "v" * 257}), ("detail", {str(i): "" for i in range(17)}),
    ("ts", "٢٠٢٦-01-05T08:30:00.000000Z"),
])
def test_malformed_records_are_refused(field: str, value: object) -> None:
    record = dataclasses.replace(make_record(1), **{field: value})
    assert [name for name, _ in record.problems()] == [field]
    with pytest.raises(InputError) as err:
        encode_record(record)
    assert err.value.field == field and err.value.rule == "audit.record_format"


@pytest.mark.parametrize("data", [
    b'{"seq":1}',
    b"[]",
    encode_record(make_record(1)).replace(b'"seq":1', b'"seq": 1'),
    encode_record(make_record(1)).replace(b'"allowed"', b'"maybe"'),
    encode_record(make_record(1)).replace(b'["P000001"]', b'"P000001"'),
    encode_record(make_record(1))[:-1] + b',"zz":1}',
])
def test_decode_refuses_anything_but_a_canonical_well_formed_record(data: bytes) -> None:
    with pytest.raises(InputError):
        decode_record(data)


def test_citizen_access_log_filter() -> None:
    today = date(2026, 6, 1)
    seen = make_record(7, subjects=("P000001", "P000002"))
    assert citizen_can_see(seen, "P000002", today)
    assert not citizen_can_see(seen, "P000003", today)
    assert not citizen_can_see(dataclasses.replace(seen, outcome="denied"), "P000001", today)
    assert not citizen_can_see(dataclasses.replace(seen, action="write"), "P000001", today)
    assert citizen_can_see(dataclasses.replace(seen, action="export"), "P000001", today)
    hidden = dataclasses.replace(seen, hidden_until="2026-06-01")
    assert not citizen_can_see(hidden, "P000001", today)  # hidden through that day
    assert citizen_can_see(hidden, "P000001", date(2026, 6, 2))


# --- tree heads ------------------------------------------------------------------------------


def test_head_message_and_signature_known_answer() -> None:
    head = TreeHead(1, record_leaf(make_record(1)).hex(), "2026-01-05T08:00:01.000000Z",
                    KEY.key_id)
    assert head.message() == (
        b'cutru-audit-head-v1\n{"key_id":"21fe31dfa154a261","root":"' + head.root.encode()
        + b'","size":1,"ts":"2026-01-05T08:00:01.000000Z"}'
    )
    signed = sign_head(head, KEY)
    assert signed.signature == HEAD_SIGNATURE_1
    verify_head(signed, KEYS)
    assert SignedTreeHead.from_dict(signed.to_dict()) == signed


def test_a_head_signed_by_an_unknown_key_is_rejected() -> None:
    head = TreeHead(0, merkle.EMPTY_ROOT.hex(), "2026-01-05T08:00:01.000000Z", OTHER.key_id)
    signed = sign_head(head, OTHER)
    with pytest.raises(CheckpointInvalid, match="unknown key"):
        verify_head(signed, KEYS)
    verify_head(signed, {OTHER.key_id: OTHER.public_key_bytes})


@pytest.mark.parametrize("change", [
    {"size": 2}, {"root": "00" * 32}, {"ts": "2026-01-05T08:00:02.000000Z"},
])
def test_an_altered_head_is_rejected(change: dict[str, Any]) -> None:
    signed = make_log(3)[1][-1]
    altered = SignedTreeHead(dataclasses.replace(signed.head, **change), signed.signature)
    with pytest.raises(CheckpointInvalid, match="does not verify"):
        verify_head(altered, KEYS)


def test_malformed_heads_are_refused() -> None:
    head = TreeHead(-1, "XY", "now", "key")
    with pytest.raises(InputError):
        sign_head(head, KEY)
    with pytest.raises(CheckpointInvalid, match="malformed"):
        verify_head(SignedTreeHead(head, "00" * 64), KEYS)
    good = make_log(1)[1][0]
    with pytest.raises(CheckpointInvalid, match="128"):
        verify_head(SignedTreeHead(good.head, "00"), KEYS)
    with pytest.raises(InputError, match="this key"):
        sign_head(dataclasses.replace(good.head, key_id=OTHER.key_id), KEY)
    with pytest.raises(CheckpointInvalid):
        SignedTreeHead.from_dict({"size": 1})


def test_a_checkpoint_signature_is_no_head_signature() -> None:
    # The same key signs both; the message prefixes keep the two kinds apart.
    cp = Checkpoint(1, "ab" * 32, "cd" * 32, "2026-01-05T08:00:01.000000Z", KEY.key_id)
    signature = KEY.sign(cp).signature
    head = TreeHead(1, "ab" * 32, "2026-01-05T08:00:01.000000Z", KEY.key_id)
    with pytest.raises(CheckpointInvalid):
        verify_head(SignedTreeHead(head, signature), KEYS)


def test_inclusion_and_consistency_of_records_against_heads() -> None:
    records, heads = make_log(10)
    leaves = [record_leaf(r) for r in records]
    last = heads[-1].head
    for r in records:
        proof = merkle.inclusion_proof(leaves, r.seq - 1)
        assert verify_record_inclusion(r, last, proof)
        assert not verify_record_inclusion(dataclasses.replace(r, reason="x"), last, proof)
    for old in heads:
        proof = merkle.consistency_proof(leaves, old.head.size)
        assert verify_head_consistency(old.head, last, proof)
        assert not verify_head_consistency(
            dataclasses.replace(old.head, root="00" * 32), last, proof)


# --- verify_log ------------------------------------------------------------------------------


def test_a_clean_log_verifies() -> None:
    records, heads = make_log(10)
    assert verify_log(records, heads, KEYS) == []
    assert verify_log(iter(records), heads, KEYS) == []  # one pass over any iterable
    assert verify_log([], [], KEYS) == []
    empty = sign_head(TreeHead(0, merkle.EMPTY_ROOT.hex(), records[0].ts, KEY.key_id), KEY)
    assert verify_log(records, [empty, *heads], KEYS) == []


def changed(value: object) -> object:
    """A different, still well-formed value of the same field."""
    if isinstance(value, bool) or value is None:
        return "x"
    if isinstance(value, int):
        return value + 1000
    if isinstance(value, tuple):
        return tuple(sorted({*value, "zz"}))
    if isinstance(value, dict):
        return {**value, "extra": "1"}
    if value in ("allowed", "denied"):
        return "denied" if value == "allowed" else "allowed"
    if value == "read":
        return "search"
    return value[:-1] + ("0" if value[-1] != "0" else "1")


FIELDS = [f.name for f in dataclasses.fields(AuditRecord)]


@pytest.mark.parametrize("field", FIELDS)
def test_editing_any_field_of_any_record_is_detected(field: str) -> None:
    records, heads = make_log(10)
    for i, record in enumerate(records):
        value = changed(getattr(record, field))
        if field == "ts":
            value = record.ts.replace(".000000Z", ".000001Z")
        if field == "hidden_until":
            value = "2027-01-01"
        if field == "journal_seq":
            value = 5
        edited = dataclasses.replace(record, **{field: value})
        assert not edited.problems(), (field, edited.problems())
        tampered = [*records[:i], edited, *records[i + 1:]]
        problems = verify_log(tampered, heads, KEYS)
        assert covers(problems, i + 1), (field, i, problems)


def test_an_edit_is_pinpointed_to_the_records_between_two_heads() -> None:
    records, heads = make_log(12, every=4)
    records[5] = dataclasses.replace(records[5], principal="officer:other")
    problems = verify_log(records, heads, KEYS)
    assert kinds(problems) == ["records_altered"]
    assert (problems[0].first_seq, problems[0].last_seq, problems[0].head_size) == (5, 8, 8)
    # With a head after every record, the pinpoint is exact.
    records, heads = make_log(12, every=1)
    records[5] = dataclasses.replace(records[5], principal="officer:other")
    problems = verify_log(records, heads, KEYS)
    assert (problems[0].first_seq, problems[0].last_seq) == (6, 6)


@pytest.mark.parametrize("i", range(10))
def test_deleting_a_record_is_detected(i: int) -> None:
    records, heads = make_log(10)
    problems = verify_log(records[:i] + records[i + 1:], heads, KEYS)
    assert covers(problems, i + 1)
    assert "seq_missing" in kinds(problems) or i == 9


def test_deleting_the_last_records_is_detected_by_the_head() -> None:
    records, heads = make_log(10)
    problems = verify_log(records[:7], heads, KEYS)
    assert kinds(problems) == ["head_beyond_log"]
    assert (problems[0].first_seq, problems[0].last_seq) == (8, 10)


@pytest.mark.parametrize(("i", "j"), [(0, 1), (2, 7), (8, 9), (0, 9)])
def test_reordering_two_records_is_detected(i: int, j: int) -> None:
    records, heads = make_log(10)
    swapped = list(records)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    problems = verify_log(swapped, heads, KEYS)
    assert "seq_out_of_order" in kinds(problems) and covers(problems, i + 1)
    # Renumbered to hide the swap: the seqs run on, but the tree does not match.
    renumbered = [dataclasses.replace(r, seq=k + 1) for k, r in enumerate(swapped)]
    problems = verify_log(renumbered, heads, KEYS)
    assert covers(problems, i + 1)


@pytest.mark.parametrize("i", range(10))
def test_inserting_a_record_is_detected(i: int) -> None:
    records, heads = make_log(10)
    forged = make_record(i + 1, principal="intruder")
    inserted = [*records[:i], forged, *records[i:]]
    problems = verify_log(inserted, heads, KEYS)
    assert "seq_out_of_order" in kinds(problems) and covers(problems, i + 1)
    renumbered = [dataclasses.replace(r, seq=k + 1) for k, r in enumerate(inserted)]
    problems = verify_log(renumbered, heads, KEYS)
    assert "records_altered" in kinds(problems) and covers(problems, i + 1)


def test_appending_unsigned_records_is_not_a_problem_until_a_head_covers_them() -> None:
    # Records written after the newest head are vouched for by no one yet (docs/audit.md).
    records, heads = make_log(10)
    assert verify_log([*records, make_record(11)], heads, KEYS) == []


def test_heads_that_are_invalid_out_of_order_or_forked_are_reported() -> None:
    records, heads = make_log(9)
    foreign = sign_head(dataclasses.replace(heads[0].head, key_id=OTHER.key_id), OTHER)
    problems = verify_log(records, [*heads, foreign], KEYS)
    assert kinds(problems) == ["head_invalid"]
    assert verify_log(records, [heads[1], heads[0], heads[2]], KEYS)[0].kind == "head_order"
    # A head over a different history of the first 3 records, though later ones match.
    other = [make_record(1, reason="other"), *records[1:3]]
    fork_root = merkle.root([record_leaf(r) for r in other]).hex()
    fork = sign_head(dataclasses.replace(heads[0].head, root=fork_root), KEY)
    problems = verify_log(records, [fork, *heads[1:]], KEYS)
    assert kinds(problems) == ["head_fork"]


def test_one_wild_seq_or_ts_is_reported_once_not_for_every_later_record() -> None:
    records, heads = make_log(30, every=30)
    records[3] = dataclasses.replace(records[3], seq=10**9, ts="2099-01-01T00:00:00.000000Z")
    problems = verify_log(records, heads, KEYS)
    assert sorted(kinds(problems)) == ["records_altered", "seq_missing", "seq_out_of_order",
                                       "ts_order"]


def test_malformed_and_backdated_records_are_reported() -> None:
    records, heads = make_log(6)
    records[2] = dataclasses.replace(records[2], outcome="maybe")
    records[4] = dataclasses.replace(records[4], ts="2025-01-01T00:00:00.000000Z")
    found = kinds(verify_log(records, heads, KEYS))
    assert {"record_malformed", "ts_order", "records_altered"} <= set(found)


def test_the_worked_examples_of_docs_audit_md_are_what_the_code_computes() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "audit.md").read_text(encoding="utf-8")
    record = make_record(1)
    head = TreeHead(1, LEAF_1, record.ts, KEY.key_id)
    acc = merkle.MerkleAccumulator()
    for data in CT_LEAVES[:6]:
        acc.append(merkle.leaf_hash(data))
    frontier = acc.to_bytes().hex()
    shown = [
        encode_record(record).decode(), f"These {len(encode_record(record))} bytes", LEAF_1,
        head.message().decode(), f"message of {len(head.message())} bytes", HEAD_SIGNATURE_1,
        frontier[:16], frontier[16:80], frontier[80:],
    ]
    for data in CT_LEAVES:
        shown.append(merkle.leaf_hash(data).hex())
    for snippet in shown:
        assert snippet in doc
