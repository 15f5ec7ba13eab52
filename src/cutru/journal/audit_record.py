"""Audit records and signed tree heads: the audit log's formats (``docs/audit.md``).

Every read, search, denial, write, login and policy change appends one :class:`AuditRecord`.
Record ``seq`` is leaf ``seq - 1`` of an RFC 6962 Merkle tree (:mod:`cutru.journal.merkle`)
whose leaf data is ``b"cutru-audit-v1\\n" || canonical(record)``. The writer signs the tree's
size and root as a :class:`TreeHead`; :func:`verify_log` checks the records against the heads.

>>> from cutru.journal.signing import SigningKey
>>> key = SigningKey.generate()
>>> r = AuditRecord(1, "2026-01-05T08:30:00.000000Z", "officer:hk-0042", "officer", None,
...                 "read", "allowed", "allowed.duty", "duty", "Law 68/2020 Art. 13", None,
...                 ("P000001",), ("full_name",), None, None, {})
>>> head = TreeHead(1, merkle.root([record_leaf(r)]).hex(), r.ts, key.key_id)
>>> verify_log([r], [sign_head(head, key)], {key.key_id: key.public_key_bytes})
[]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cutru.errors import CheckpointInvalid, ConfigError, InputError
from cutru.journal import canonical, merkle
from cutru.journal.signing import SigningKey, key_id_of

RECORD_PREFIX = b"cutru-audit-v1\n"
HEAD_PREFIX = b"cutru-audit-head-v1\n"
OUTCOMES = ("allowed", "denied")
#: The actions cutru writes today; others are accepted if they match the action pattern.
KNOWN_ACTIONS = ("read", "search", "write", "deny", "login", "login_failed", "logout",
                 "policy_change", "key_use", "export")
#: The actions a citizen's access log shows (``docs/audit.md``, "The citizen's access log").
CITIZEN_ACTIONS = frozenset({"read", "search", "export"})
MAX_DETAIL_MEMBERS = 16
MAX_DETAIL_VALUE = 256

_ACTION = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HEX = re.compile(r"[0-9a-f]*")
_REQUIRED_TEXT = ("principal", "principal_kind", "reason")
_OPTIONAL_TEXT = ("agency", "purpose_kind", "legal_basis", "case_number")


@dataclass(frozen=True)
class AuditRecord:
    """One audited event. The constructor does not validate, so that a damaged stored record
    can be loaded and reported; :meth:`problems` lists what is malformed."""

    seq: int  # 1, 2, 3, ... with no gaps: leaf seq - 1 of the tree
    ts: str  # UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ", never earlier than the previous record's
    principal: str  # who acted (an account or service id)
    principal_kind: str  # officer, agency_state, citizen, ... (access.principals)
    agency: str | None  # the principal's agency, if any
    action: str  # read, search, write, deny, login, ... (KNOWN_ACTIONS)
    outcome: str  # "allowed" or "denied"
    reason: str  # the policy decision's reason code: allowed.duty, denied.no_purpose, ...
    purpose_kind: str | None  # the declared purpose's kind
    legal_basis: str | None
    case_number: str | None
    subjects: tuple[str, ...]  # person keys concerned; sorted, no duplicates
    fields: tuple[str, ...]  # field names returned; sorted, no duplicates
    journal_seq: int | None  # the journal entry written in the same transaction
    hidden_until: str | None  # "YYYY-MM-DD": hidden from the citizen's access log through this day
    detail: dict[str, str]  # a few members (query kind, ...), never personal data values

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each malformed field; empty when all are well formed."""
        found: list[tuple[str, str]] = []
        if not _is_seq(self.seq):
            found.append(("seq", f"must be an integer from 1 to 2**63 - 1, got {self.seq!r}"))
        if not _is_timestamp(self.ts):
            found.append(("ts", "must be UTC time as YYYY-MM-DDTHH:MM:SS.ffffffZ"))
        for name in _REQUIRED_TEXT:
            if not _is_text(getattr(self, name)):
                found.append((name, "must be a non-empty string"))
        for name in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and not _is_text(value):
                found.append((name, "must be null or a non-empty string"))
        if not (_is_text(self.action) and _ACTION.fullmatch(self.action)):
            found.append(("action", "must be lower-case words joined by '_' or '.'"))
        if self.outcome not in OUTCOMES:
            found.append(("outcome", f"must be one of {', '.join(OUTCOMES)}"))
        for name in ("subjects", "fields"):
            if not _is_sorted_set(getattr(self, name)):
                found.append((name, "must be a tuple of non-empty strings, sorted, no duplicates"))
        if self.journal_seq is not None and not _is_seq(self.journal_seq):
            found.append(("journal_seq", "must be null or an integer from 1 to 2**63 - 1"))
        if self.hidden_until is not None and not _is_date(self.hidden_until):
            found.append(("hidden_until", "must be null or a date YYYY-MM-DD"))
        if not _is_detail(self.detail):
            found.append(("detail", f"must map at most {MAX_DETAIL_MEMBERS} non-empty names "
                                    f"to strings of at most {MAX_DETAIL_VALUE} characters"))
        return found


def record_object(record: AuditRecord) -> dict[str, Any]:
    """The record as a canonical-JSON value: tuples become arrays."""
    r = record
    return {
        "seq": r.seq, "ts": r.ts, "principal": r.principal, "principal_kind": r.principal_kind,
        "agency": r.agency, "action": r.action, "outcome": r.outcome, "reason": r.reason,
        "purpose_kind": r.purpose_kind, "legal_basis": r.legal_basis,
        "case_number": r.case_number, "subjects": list(r.subjects), "fields": list(r.fields),
        "journal_seq": r.journal_seq, "hidden_until": r.hidden_until, "detail": dict(r.detail),
    }


def encode_record(record: AuditRecord) -> bytes:
    """The canonical encoding of ``record``; :class:`InputError` if it is malformed."""
    if problems := record.problems():
        raise InputError(
            f"malformed audit record at seq {record.seq!r}: {_describe(problems)}",
            field=problems[0][0],
            rule="audit.record_format",
        )
    return canonical.encode(record_object(record))


def decode_record(data: bytes) -> AuditRecord:
    """The record whose canonical encoding is exactly ``data``, or :class:`InputError`."""
    value = canonical.decode(data)
    names = [f.name for f in fields(AuditRecord)]
    if not isinstance(value, dict) or set(value) != set(names):
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise InputError(f"an audit record has the fields {sorted(names)}, not {got}",
                         field="record", rule="audit.record_fields")
    for name in ("subjects", "fields"):
        if not isinstance(value[name], list):
            raise InputError(f"{name} must be an array", field=name, rule="audit.record_format")
        value[name] = tuple(value[name])
    record = AuditRecord(**value)
    encode_record(record)  # raises on any malformed field
    return record


def record_leaf(record: AuditRecord) -> bytes:
    """The Merkle leaf hash of ``record``: ``SHA-256(0x00 || RECORD_PREFIX || encoding)``."""
    return merkle.leaf_hash(RECORD_PREFIX + encode_record(record))


def citizen_can_see(record: AuditRecord, person_key: str, today: date) -> bool:
    """Whether the access log of ``person_key`` shows ``record`` on ``today``: an allowed
    read, search or export that concerns them, not hidden through today."""
    return (
        person_key in record.subjects
        and record.outcome == "allowed"
        and record.action in CITIZEN_ACTIONS
        and (record.hidden_until is None or record.hidden_until < today.isoformat())
    )


# --- signed tree heads ----------------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    """The audit tree after ``size`` records, as the signer saw it (not validated here)."""

    size: int  # records covered: seq 1..size
    root: str  # hex Merkle tree hash of their leaves
    ts: str  # UTC time of signing, same format as records
    key_id: str  # 16 hex digits naming the signing key

    def message(self) -> bytes:
        """The bytes the signature covers (call only when :meth:`problems` is empty)."""
        return HEAD_PREFIX + canonical.encode(asdict(self))

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if type(self.size) is not int or not 0 <= self.size <= canonical.INT_MAX:
            found.append(("size", f"must be an integer from 0 to 2**63 - 1, got {self.size!r}"))
        if not _is_hex(self.root, 64):
            found.append(("root", "must be 64 lower-case hex digits"))
        if not _is_timestamp(self.ts):
            found.append(("ts", "must be UTC time as YYYY-MM-DDTHH:MM:SS.ffffffZ"))
        if not _is_hex(self.key_id, 16):
            found.append(("key_id", "must be 16 lower-case hex digits"))
        return found


@dataclass(frozen=True)
class SignedTreeHead:
    head: TreeHead
    signature: str  # hex 64-byte Ed25519 signature of head.message()

    def to_dict(self) -> dict[str, Any]:
        """The head's fields plus ``signature``: the form to store as JSON."""
        return {**asdict(self.head), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedTreeHead:
        """Inverse of :meth:`to_dict`; :class:`CheckpointInvalid` if a field is missing or extra."""
        names = [f.name for f in fields(TreeHead)]
        if set(data) != {*names, "signature"}:
            raise CheckpointInvalid(f"a stored tree head has the fields {sorted(data)}, "
                                    f"not {sorted({*names, 'signature'})}")
        return cls(TreeHead(**{name: data[name] for name in names}), data["signature"])


def sign_message(key: SigningKey, message: bytes) -> str:
    """Hex Ed25519 signature of ``message``. Every message cutru signs starts with its own
    ``...-v1\\n`` prefix, so one key may sign checkpoints and tree heads: neither can pass
    for the other."""
    return key.sign_message(message)


def verify_message(public_keys: Mapping[str, bytes], key_id: str, message: bytes,
                   signature: str, where: str) -> None:
    """Return if ``signature`` (hex) over ``message`` verifies under key ``key_id`` of
    ``public_keys``, else raise :class:`CheckpointInvalid` starting with ``where``."""
    raw = public_keys.get(key_id)
    if raw is None:
        known = ", ".join(sorted(public_keys)) or "none"
        raise CheckpointInvalid(f"{where} is signed by unknown key {key_id} (known keys: {known})",
                                key_id=key_id)
    if key_id_of(raw) != key_id:
        raise ConfigError(f"the public key listed as {key_id} has key id {key_id_of(raw)}",
                          field="key_dir", rule="keys.key_id_mismatch")
    if not _is_hex(signature, 128):
        raise CheckpointInvalid(f"{where}: signature must be 128 lower-case hex digits")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ConfigError(f"the public key {key_id} is not 32 bytes",
                          field="key_dir", rule="keys.public_key_format") from None
    try:
        public_key.verify(bytes.fromhex(signature), message)
    except InvalidSignature:
        raise CheckpointInvalid(f"{where}: the signature by key {key_id} does not verify; "
                                "it was altered or not made by that key", key_id=key_id) from None


def sign_head(head: TreeHead, key: SigningKey) -> SignedTreeHead:
    """Sign ``head``, whose ``key_id`` must be this key's."""
    if problems := head.problems():
        raise InputError(f"malformed tree head: {_describe(problems)}",
                         field=problems[0][0], rule="audit_head.format")
    if head.key_id != key.key_id:
        raise InputError(f"tree head names key {head.key_id}, but this key is {key.key_id}",
                         field="key_id", rule="audit_head.key_id")
    return SignedTreeHead(head, sign_message(key, head.message()))


def verify_head(signed: SignedTreeHead, public_keys: Mapping[str, bytes]) -> None:
    """Return if ``signed`` is well formed and signed by one of ``public_keys`` (key id → raw
    public key), else raise :class:`CheckpointInvalid` saying why."""
    head = signed.head
    where = f"audit tree head of size {head.size!r}"
    if problems := head.problems():
        raise CheckpointInvalid(f"{where} is malformed: {_describe(problems)}")
    verify_message(public_keys, head.key_id, head.message(), signed.signature, where)


def verify_record_inclusion(record: AuditRecord, head: TreeHead, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows ``record`` as leaf ``seq - 1`` of the tree of ``head``."""
    if record.problems() or head.problems():
        return False
    return merkle.verify_inclusion(record_leaf(record), record.seq - 1, head.size, proof,
                                   bytes.fromhex(head.root))


def verify_head_consistency(old: TreeHead, new: TreeHead, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree of ``old`` to be a prefix of the tree of ``new``."""
    if old.problems() or new.problems():
        return False
    return merkle.verify_consistency(old.size, new.size, bytes.fromhex(old.root),
                                     bytes.fromhex(new.root), proof)


# --- verifying the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    """One thing :func:`verify_log` found wrong. ``first_seq``..``last_seq`` are the records
    it concerns, when known: by seq for the record checks, by 1-based position in the log for
    the head checks (the same numbers while no seq is missing or moved). ``head_size`` names
    the tree head concerned, if any.

    Kinds: ``record_malformed``, ``seq_missing``, ``seq_out_of_order``, ``ts_order``,
    ``head_invalid``, ``head_order``, ``head_fork``, ``records_altered``, ``head_beyond_log``.
    """

    kind: str
    message: str
    first_seq: int | None = None
    last_seq: int | None = None
    head_size: int | None = None


def verify_log(records: Iterable[AuditRecord], heads: Sequence[SignedTreeHead],
               public_keys: Mapping[str, bytes]) -> list[AuditProblem]:
    """Check ``records`` (in stored order) against ``heads`` (in the order signed); return
    every problem found, empty if none. Reads the records once, holding O(log n) hashes.

    Checks, as ``docs/audit.md`` "Verifying the log" lists them: each record well formed,
    ``seq`` gapless from 1, ``ts`` non-decreasing; each head signed by a known key; sizes and
    times non-decreasing in signing order; each head's root equal to the root of the first
    ``size`` records' leaves, which also proves every pair of heads consistent.
    """
    problems: list[AuditProblem] = []
    valid = _valid_heads(heads, public_keys, problems)
    pending = sorted(valid, key=lambda h: h.size, reverse=True)  # smallest last, to pop
    matches: list[tuple[TreeHead, bool]] = []
    acc = merkle.MerkleAccumulator()
    expected, last_ts = 1, ""

    def settle() -> None:
        while pending and pending[-1].size == acc.size:
            head = pending.pop()
            matches.append((head, acc.root().hex() == head.root))

    settle()
    for record in records:
        found = record.problems()
        expected, last_ts = _check_record(record, found, expected, last_ts, problems)
        if found:  # no signer ever encoded it, so it can match no head: any leaf will do
            acc.append(bytes(merkle.HASH_SIZE))
        else:
            acc.append(merkle.leaf_hash(RECORD_PREFIX + canonical.encode(record_object(record))))
        settle()
    problems.extend(_root_problems(matches))
    if pending:
        top = pending[0].size
        problems.append(AuditProblem(
            "head_beyond_log",
            f"a signed head covers {top} records but the log holds only {acc.size}: "
            "records were removed (from the end, or elsewhere: see the other problems)",
            acc.size + 1, top, top))
    return problems


def _valid_heads(heads: Sequence[SignedTreeHead], public_keys: Mapping[str, bytes],
                 problems: list[AuditProblem]) -> list[TreeHead]:
    """The heads whose signatures verify, after reporting the others and any head signed
    with a smaller size or an earlier time than the one signed before it."""
    valid: list[TreeHead] = []
    for signed in heads:
        try:
            verify_head(signed, public_keys)
        except CheckpointInvalid as exc:
            size = signed.head.size if type(signed.head.size) is int else None
            problems.append(AuditProblem("head_invalid", exc.message, head_size=size))
            continue
        head = signed.head
        if valid and (head.size < valid[-1].size or head.ts < valid[-1].ts):
            problems.append(AuditProblem(
                "head_order",
                f"the head of size {head.size} at {head.ts} was signed after the head of "
                f"size {valid[-1].size} at {valid[-1].ts}: a log never shrinks or goes back",
                head_size=head.size))
        valid.append(head)
    return valid


def _check_record(record: AuditRecord, found: list[tuple[str, str]], expected: int,
                  last_ts: str, problems: list[AuditProblem]) -> tuple[int, str]:
    """Report what is wrong with ``record`` (``found``: its own problems) and with its place
    in the sequence; return the next (expected seq, last ts)."""
    seq = record.seq if type(record.seq) is int else None
    if found:
        problems.append(AuditProblem(
            "record_malformed", f"the record after seq {expected - 1} is malformed: "
            f"{_describe(found)}", seq, seq))
    # Each record is compared with the one just before it, not with the largest seen, so one
    # wild seq or ts is one or two problems, not one for every record after it.
    if seq is None:
        return expected + 1, last_ts
    if seq > expected:
        problems.append(AuditProblem(
            "seq_missing", f"records {expected}..{seq - 1} are missing before seq {seq}",
            expected, seq - 1))
    elif seq < expected:
        problems.append(AuditProblem(
            "seq_out_of_order", f"seq {seq} comes after seq {expected - 1}: a record was "
            "repeated, inserted or moved", seq, seq))
    if isinstance(record.ts, str):
        if record.ts < last_ts:
            problems.append(AuditProblem(
                "ts_order", f"seq {seq} at {record.ts} is earlier than the record before it "
                f"at {last_ts}", seq, seq))
        last_ts = record.ts
    return seq + 1, last_ts


def _root_problems(matches: list[tuple[TreeHead, bool]]) -> list[AuditProblem]:
    """From each head and whether the records match it (in size order): the first range of
    altered records, and each head that contradicts a larger head the records match."""
    problems: list[AuditProblem] = []
    good = 0
    for i, (head, ok) in enumerate(matches):
        if ok:
            good = head.size
            continue
        later = next((h for h, later_ok in matches[i + 1:] if later_ok), None)
        if later is not None:
            problems.append(AuditProblem(
                "head_fork",
                f"the signed head of size {head.size} disagrees with the records, but the "
                f"later head of size {later.size} agrees: the two heads are inconsistent, so "
                "the signer signed two different histories", head_size=head.size))
            continue
        since = f"the head of size {good} matched" if good else "no smaller head matched"
        problems.append(AuditProblem(
            "records_altered",
            f"the records do not match the signed head of size {head.size} ({since}): a "
            f"record at positions {good + 1}..{head.size} was altered, inserted, removed or "
            "moved, and no later record can be vouched for", good + 1, head.size, head.size))
        break
    return problems


def _describe(problems: list[tuple[str, str]]) -> str:
    return "; ".join(f"{name} {problem}" for name, problem in problems)


def _is_seq(value: object) -> bool:
    return type(value) is int and 1 <= value <= canonical.INT_MAX


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _is_hex(value: object, digits: int) -> bool:
    return isinstance(value, str) and len(value) == digits and _HEX.fullmatch(value) is not None


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value[:-1])  # the pattern fixed the form; this checks ranges
    except ValueError:
        return False
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_sorted_set(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and all(_is_text(item) for item in value)
        and all(a < b for a, b in pairwise(value))
    )


def _is_detail(value: object) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= MAX_DETAIL_MEMBERS
        and all(_is_text(k) and isinstance(v, str) and len(v) <= MAX_DETAIL_VALUE
                for k, v in value.items())
    )
