"""The access policy as data: purposes, what each may see and do, loaded from TOML.

A *purpose* is a lawful reason to use residence data (Decree 62/2021 Art. 13(3)–(4); Decree
154/2024 Art. 13(5)): who may declare it, what the declaration must carry, which fields it
returns, where it applies and which actions it allows. The vocabulary the policy may use
(principal kinds, field classes and fields, requirements, jurisdiction rules, actions) is fixed
here in code; which purposes exist and what they allow is data (``default_policy.toml``).

:func:`load_policy` refuses a file with any error, naming its line: a policy that loads is
one the decision function can follow without surprises. The format is in ``docs/access.md``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from cutru.access.principals import COMMUNE_ONLY, NO_PERSONAL_DATA, PrincipalKind
from cutru.domain.fields import FIELDS_BY_NAME, PERSON_FIELDS, SENSITIVE_FIELDS, FieldClass
from cutru.errors import PolicyError

POLICY_VERSION = 1


class ResourceKind(StrEnum):
    PERSON = "person"
    HOUSEHOLD = "household"
    COMMUNE = "commune"  # every record of one commune (bulk re-addressing)
    AUDIT = "audit"  # the audit log
    BACKUP = "backup"  # backup repositories, snapshots, restores
    PRINCIPAL = "principal"  # identities and their roles


#: Resources that hold personal data.
PERSONAL_RESOURCES = frozenset({ResourceKind.PERSON, ResourceKind.HOUSEHOLD, ResourceKind.COMMUNE})


class Requirement(StrEnum):
    """What a declaration must carry besides the purpose's name."""

    LEGAL_BASIS = "legal_basis"  # the duty (or procedure) and its legal basis, as text
    CASE_NUMBER = "case_number"  # the case or administrative-procedure file number
    GRANT = "grant"  # an approved third-party grant


class Jurisdiction(StrEnum):
    OWN_UNIT = "own_unit"  # records registered in the principal's unit
    PROVINCE = "province"  # records registered in the province of the principal's unit
    NATIONAL = "national"  # anywhere
    OWN_RECORD = "own_record"  # the citizen's own record, wherever it is
    GRANT = "grant"  # the one person an approved grant names


_PERSON_WRITES = (
    "person.declare", "person.adjust", "person.death", "person.missing",
    "permanent.register", "permanent.deregister", "temporary.register", "temporary.extend",
    "temporary.deregister", "stay.notify", "absence.declare", "correction.request",
    "residence.confirm",
)
_HOUSEHOLD_WRITES = ("household.register", "household.separate", "household.change_head")
#: Write transactions, by the operation name their journal entries carry.
WRITE_OPERATIONS = frozenset((*_PERSON_WRITES, *_HOUSEHOLD_WRITES, "address.readdress"))

_R = ResourceKind
#: Every action a policy may name, with the resources it applies to.
ACTIONS: Mapping[str, frozenset[ResourceKind]] = MappingProxyType({
    "read": frozenset({_R.PERSON, _R.HOUSEHOLD}),
    "search": frozenset({_R.PERSON, _R.HOUSEHOLD}),
    **{op: frozenset({_R.PERSON}) for op in _PERSON_WRITES},
    **{op: frozenset({_R.HOUSEHOLD}) for op in _HOUSEHOLD_WRITES},
    "address.readdress": frozenset({_R.COMMUNE}),
    "approve_correction": frozenset({_R.PERSON}),  # correction.approve and correction.reject
    "decide_third_party": frozenset({_R.PERSON}),
    "access_log_read": frozenset({_R.AUDIT}),  # a citizen's view of who read their record
    "audit_read": frozenset({_R.AUDIT}),
    "backup_operate": frozenset({_R.BACKUP}),
    "backup_verify": frozenset({_R.BACKUP}),
    "restore_drill": frozenset({_R.BACKUP}),
    "restore": frozenset({_R.BACKUP}),
    "principal_manage": frozenset({_R.PRINCIPAL}),
})
#: Actions on resources that hold personal data.
PERSONAL_ACTIONS = frozenset(a for a, kinds in ACTIONS.items() if kinds & PERSONAL_RESOURCES)


@dataclass(frozen=True)
class Purpose:
    """One purpose of the policy; ``fields`` is resolved from ``classes`` and ``named``."""

    name: str
    title: str
    title_vi: str
    basis: str
    principals: frozenset[PrincipalKind]
    functions: frozenset[str]  # an agency must hold one of these; empty: none needed
    requires: frozenset[Requirement]
    classes: frozenset[FieldClass]
    named: frozenset[str]
    fields: frozenset[str]
    sensitive: bool
    jurisdiction: Jurisdiction
    actions: frozenset[str]
    line: int = 0  # where the purpose is defined in its file


@dataclass(frozen=True)
class Policy:
    source: str
    purposes: Mapping[str, Purpose]
    description: str = ""


def load_policy(text: str, source: str) -> Policy:
    """Parse and validate a policy; any problem raises :class:`PolicyError` with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", line=_toml_error_line(exc, text),
                          source=source) from None
    return _Loader(text, source).policy(data)


@cache
def default_policy() -> Policy:
    """The policy shipped with cutru (``cutru/access/default_policy.toml``)."""
    text = resources.files("cutru.access").joinpath("default_policy.toml").read_text("utf-8")
    return load_policy(text, "cutru/access/default_policy.toml")


def _toml_error_line(exc: tomllib.TOMLDecodeError, text: str) -> int:
    lineno = getattr(exc, "lineno", None)  # Python >= 3.14
    if isinstance(lineno, int):
        return lineno
    found = re.search(r"at line (\d+)", str(exc))
    return int(found.group(1)) if found else max(1, len(text.splitlines()))


# -- validation ---------------------------------------------------------------------------

_PURPOSE_KEYS = frozenset({"title", "title_vi", "basis", "principals", "functions", "requires",
                           "classes", "fields", "sensitive", "jurisdiction", "actions"})
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_E = TypeVar("_E", bound=StrEnum)
Path = tuple[str, ...]


class _Loader:
    def __init__(self, text: str, source: str) -> None:
        self.where = _Where(text)
        self.source = source

    def fail(self, path: Path, problem: str, element: str | None = None) -> NoReturn:
        """Refuse the file, naming the line of ``path`` (of ``element`` in its array)."""
        line = self.where.element(path, element) if element else self.where.line(path)
        if len(path) >= 2 and path[0] == "purposes":
            problem = f"purpose {path[1]!r}: {problem}"
        raise PolicyError(problem, line=line, source=self.source)

    def policy(self, data: dict[str, Any]) -> Policy:
        for key in sorted(set(data) - {"version", "description", "purposes"}):
            self.fail((key,), f"unknown top-level key {key!r}")
        if data.get("version") != POLICY_VERSION:
            self.fail(("version",), f"version must be {POLICY_VERSION}")
        description = self.text((), data, "description", required=False)
        table = data.get("purposes")
        if not isinstance(table, dict) or not table:
            self.fail(("purposes",), "the policy defines no purposes ([purposes.NAME] tables)")
        purposes = {name: self.purpose(name, body) for name, body in table.items()}
        return Policy(self.source, MappingProxyType(purposes), description)

    def purpose(self, name: str, body: Any) -> Purpose:
        path = ("purposes", name)
        if not _NAME.fullmatch(name):
            self.fail(path, "a purpose name is lower-case letters, digits and _")
        if not isinstance(body, dict):
            self.fail(path, "must be a table")
        for key in sorted(set(body) - _PURPOSE_KEYS):
            self.fail((*path, key), f"unknown key {key!r}")
        if not self.text(path, body, "basis", required=False):
            self.fail(path, "has no legal basis (basis = \"...\")")
        classes = self.enums(path, body, "classes", FieldClass, "field class")
        named = self.field_names(path, body)
        purpose = Purpose(
            name=name,
            title=self.text(path, body, "title"),
            title_vi=self.text(path, body, "title_vi", required=False),
            basis=self.text(path, body, "basis"),
            principals=self.enums(path, body, "principals", PrincipalKind, "principal kind",
                                  required=True),
            functions=self.names(path, body, "functions"),
            requires=self.enums(path, body, "requires", Requirement, "requirement",
                                required=True, empty_ok=True),
            classes=classes,
            named=named,
            fields=frozenset(f.name for f in PERSON_FIELDS if f.field_class in classes) | named,
            sensitive=self.flag(path, body, "sensitive"),
            jurisdiction=self.enum(path, body, "jurisdiction", Jurisdiction, "jurisdiction rule"),
            actions=self.actions(path, body),
            line=self.where.line(path),
        )
        _Rules(self, purpose).check()
        return purpose

    # typed readers: each names the line of what it rejects
    def text(self, path: Path, body: dict[str, Any], key: str, *, required: bool = True) -> str:
        value = body.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail((*path, key) if key in body else path, f"{key} must be non-empty text")
        return value.strip()

    def flag(self, path: Path, body: dict[str, Any], key: str) -> bool:
        value = body.get(key, False)
        if not isinstance(value, bool):
            self.fail((*path, key), f"{key} must be true or false")
        return value

    def strings(self, path: Path, body: dict[str, Any], key: str, *, required: bool = False,
                empty_ok: bool = False) -> list[str]:
        if key not in body:
            if required:
                self.fail(path, f"needs {key} = [...]")
            return []
        value = body[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail((*path, key), f"{key} must be a list of strings")
        if required and not empty_ok and not value:
            self.fail((*path, key), f"{key} must not be empty")
        return list(value)

    def enums(self, path: Path, body: dict[str, Any], key: str, enum: type[_E], what: str, *,
              required: bool = False, empty_ok: bool = False) -> frozenset[_E]:
        known = {e.value: e for e in enum}
        out: set[_E] = set()
        for value in self.strings(path, body, key, required=required, empty_ok=empty_ok):
            if value not in known:
                self.fail((*path, key), f"unknown {what} {value!r} (known: "
                          f"{', '.join(known)})", element=value)
            out.add(known[value])
        return frozenset(out)

    def enum(self, path: Path, body: dict[str, Any], key: str, enum: type[_E], what: str) -> _E:
        value = body.get(key)
        known = {e.value: e for e in enum}
        if not isinstance(value, str) or value not in known:
            self.fail((*path, key) if key in body else path,
                      f"{key}: unknown {what} {value!r} (known: {', '.join(known)})")
        return known[value]

    def names(self, path: Path, body: dict[str, Any], key: str) -> frozenset[str]:
        values = self.strings(path, body, key)
        for value in values:
            if not _NAME.fullmatch(value):
                self.fail((*path, key), f"{key}: {value!r} is not a name", element=value)
        return frozenset(values)

    def field_names(self, path: Path, body: dict[str, Any]) -> frozenset[str]:
        values = self.strings(path, body, "fields")
        for value in values:
            if value not in FIELDS_BY_NAME:
                self.fail((*path, "fields"), f"unknown field {value!r}", element=value)
        return frozenset(values)

    def actions(self, path: Path, body: dict[str, Any]) -> frozenset[str]:
        values = self.strings(path, body, "actions", required=True)
        for value in values:
            if value not in ACTIONS:
                self.fail((*path, "actions"), f"unknown action {value!r}", element=value)
        return frozenset(values)


@dataclass
class _Rules:
    """The rules a purpose must keep beyond its vocabulary (domain.md §6; product pillar 2)."""

    loader: _Loader
    p: Purpose

    def fail(self, key: str | None, problem: str, element: str | None = None) -> NoReturn:
        path = ("purposes", self.p.name) + ((key,) if key else ())
        self.loader.fail(path, problem, element)

    def check(self) -> None:
        self.sensitive()
        self.personal_data()
        self.declaration()
        self.jurisdiction()

    def sensitive(self) -> None:
        p = self.p
        if not p.sensitive:
            if FieldClass.SENSITIVE in p.classes:
                self.fail("classes", "class 'sensitive' needs sensitive = true", "sensitive")
            for name in sorted(p.named & SENSITIVE_FIELDS):
                self.fail("fields", f"field {name!r} is sensitive: the purpose must declare "
                          "sensitive = true", name)
        elif not p.fields & SENSITIVE_FIELDS:
            self.fail("sensitive", "declares sensitive = true but names no sensitive field")

    def personal_data(self) -> None:
        p = self.p
        personal = p.actions & PERSONAL_ACTIONS
        for kind in sorted(p.principals & NO_PERSONAL_DATA):
            if personal or p.fields:
                self.fail("principals", f"principal kind {kind.value!r} never receives personal "
                          "data, but this purpose gives fields or personal actions", kind.value)
        if personal and not p.fields:
            self.fail("actions", f"actions {', '.join(sorted(personal))} need classes or fields")
        if p.fields and not personal:
            self.fail("classes" if p.classes else "fields",
                      "gives fields but none of its actions reads personal data")

    def declaration(self) -> None:
        p = self.p
        grant = Requirement.GRANT in p.requires
        if not p.requires and p.jurisdiction is not Jurisdiction.OWN_RECORD:
            self.fail("requires", "requires nothing: only an own-record purpose may do "
                      "without a declared legal basis, case number or grant")
        if PrincipalKind.THIRD_PARTY in p.principals and not grant:
            self.fail("principals", "a third party needs an approved grant "
                      "(requires = [\"grant\"])", PrincipalKind.THIRD_PARTY.value)
        if grant != (p.jurisdiction is Jurisdiction.GRANT):
            self.fail("jurisdiction", "requires a grant exactly when jurisdiction = \"grant\"")

    def jurisdiction(self) -> None:
        p = self.p
        own = p.jurisdiction is Jurisdiction.OWN_RECORD
        if PrincipalKind.CITIZEN in p.principals and not own:
            self.fail("jurisdiction", "a citizen may use only own-record purposes "
                      "(jurisdiction = \"own_record\")")
        if own and p.principals != {PrincipalKind.CITIZEN}:
            self.fail("principals", "jurisdiction \"own_record\" is for citizens only")
        commune_only = sorted(p.principals & COMMUNE_ONLY)
        if commune_only and p.jurisdiction is not Jurisdiction.OWN_UNIT:
            self.fail("jurisdiction", f"{commune_only[0].value} acts for its own commune only "
                      "(jurisdiction = \"own_unit\")")


# -- where things are in the file ---------------------------------------------------------

_HEADER = re.compile(r"\[\[?\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"([A-Za-z0-9_\-\"'. ]+?)\s*=(.*)")


class _Where:
    """The line of each table and key of a TOML text, for error messages.

    tomllib reports no positions once parsing succeeded, so this scans the raw text for
    table headers and ``key =`` lines (and the extent of multi-line arrays). It covers the
    ordinary layout of a policy file; anything it cannot place falls back to its table.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.spans: dict[Path, tuple[int, int]] = {}
        table: Path = ()
        open_key: Path | None = None
        depth = 0
        for n, raw in enumerate(self.lines, 1):
            code = _code(raw)
            if open_key is not None:
                depth += _depth(code)
                if depth <= 0:
                    self.spans[open_key] = (self.spans[open_key][0], n)
                    open_key, depth = None, 0
                continue
            stripped = code.strip()
            header = _HEADER.fullmatch(stripped)
            if header:
                table = _split(header.group(1))
                self._mark(table, n)
                continue
            key = _KEY.match(stripped)
            if key:
                path = table + _split(key.group(1))
                self._mark(path, n)
                depth = _depth(key.group(2))
                if depth > 0:
                    open_key = path

    def _mark(self, path: Path, n: int) -> None:
        for i in range(1, len(path) + 1):
            self.spans.setdefault(path[:i], (n, n))

    def line(self, path: Path) -> int:
        """The line of ``path``, else of its nearest enclosing table; 1 if none."""
        for i in range(len(path), 0, -1):
            if path[:i] in self.spans:
                return self.spans[path[:i]][0]
        return 1

    def element(self, path: Path, value: str) -> int:
        """The line of the string ``value`` in the array at ``path``."""
        start, end = self.spans.get(path, (self.line(path), self.line(path)))
        quoted = re.compile(rf"([\"']){re.escape(value)}\1")
        for n in range(start, end + 1):
            if quoted.search(_code(self.lines[n - 1])):
                return n
        return start


def _code(line: str) -> str:
    """The line without its comment (a ``#`` outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _depth(code: str) -> int:
    """How many brackets ``code`` leaves open (negative if it closes more)."""
    quote, depth = "", 0
    for ch in code:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def _split(key: str) -> Path:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", key)
    return tuple(p.strip().strip("\"'") for p in parts if p.strip())
