"""Loading policies: the shipped one, and every kind of error, each with its line."""

from __future__ import annotations

import pytest

from cutru.access import (
    PERSONAL_ACTIONS,
    Jurisdiction,
    PrincipalKind,
    Requirement,
    default_policy,
    load_policy,
)
from cutru.domain.fields import SENSITIVE_FIELDS
from cutru.errors import ConfigError, PolicyError

BASE = """\
version = 1

[purposes.registration]
title = "Registration"
basis = "Law 68/2020/QH14"
principals = ["officer"]
requires = ["legal_basis"]
classes = ["identity", "residence"]
jurisdiction = "own_unit"
actions = [
    "read",  # "bogus" in a comment is not an action
    "search",
]
"""


def error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        load_policy(text, "test.toml")
    return caught.value


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_base_loads() -> None:
    policy = load_policy(BASE, "test.toml")
    purpose = policy.purposes["registration"]
    assert purpose.principals == {PrincipalKind.OFFICER}
    assert purpose.requires == {Requirement.LEGAL_BASIS}
    assert purpose.jurisdiction is Jurisdiction.OWN_UNIT
    assert purpose.actions == {"read", "search"}
    assert "full_name" in purpose.fields and "phone" not in purpose.fields
    assert purpose.line == 3


def test_default_policy_loads_from_package_data() -> None:
    policy = default_policy()
    assert policy is default_policy()
    assert policy.source == "cutru/access/default_policy.toml"
    assert len(policy.purposes) == 13


def test_default_policy_names_sensitive_fields_only_where_declared() -> None:
    for purpose in default_policy().purposes.values():
        if purpose.fields & SENSITIVE_FIELDS:
            assert purpose.sensitive, purpose.name
    named = {p.name for p in default_policy().purposes.values() if p.sensitive}
    assert named == {"registration", "correction_review", "proceedings", "own_information"}


def test_default_policy_gives_the_system_roles_no_personal_data() -> None:
    for purpose in default_policy().purposes.values():
        if purpose.principals & {PrincipalKind.OPERATOR, PrincipalKind.AUDITOR,
                                 PrincipalKind.ADMINISTRATOR}:
            assert not purpose.fields and not purpose.actions & PERSONAL_ACTIONS


# (edit to BASE, expected line, words the message must contain)
ERRORS = [
    pytest.param(('title = "Registration"', 'title = "Registration'), 4, "not valid TOML",
                 id="syntax: unterminated string"),
    pytest.param(('jurisdiction = "own_unit"', 'jurisdiction = "own_unit"\ntitle = "again"'),
                 10, "not valid TOML", id="syntax: duplicate key"),
    pytest.param(('    "search",\n]', '    "search",\n'), 13, "not valid TOML",
                 id="syntax: unclosed array at end of file"),
    pytest.param(('classes = ["identity", "residence"]',
                  'classes = ["identity", "residence"]\nfields = ["full_name", "etnicity"]'),
                 9, "unknown field 'etnicity'", id="unknown field"),
    pytest.param(('classes = ["identity", "residence"]', 'classes = ["identity", "adress"]'),
                 8, "unknown field class 'adress'", id="unknown class"),
    pytest.param(('principals = ["officer"]', 'principals = ["officer", "journalist"]'),
                 6, "unknown principal kind 'journalist'", id="unknown principal kind"),
    pytest.param(('    "search",', '    "search",\n    "export_all",'), 13,
                 "unknown action 'export_all'", id="unknown action, in a multi-line array"),
    pytest.param(('requires = ["legal_basis"]', 'requires = ["signature"]'), 7,
                 "unknown requirement 'signature'", id="unknown requirement"),
    pytest.param(('jurisdiction = "own_unit"', 'jurisdiction = "district"'), 9,
                 "unknown jurisdiction rule 'district'", id="unknown jurisdiction"),
    pytest.param(('basis = "Law 68/2020/QH14"\n', ''), 3, "has no legal basis",
                 id="missing legal basis"),
    pytest.param(('basis = "Law 68/2020/QH14"', 'basis = "  "'), 5, "basis must be non-empty",
                 id="blank legal basis"),
    pytest.param(('classes = ["identity", "residence"]',
                  'classes = ["identity", "residence"]\nfields = [\n  "phone",\n  "religion",\n]'),
                 11, "field 'religion' is sensitive", id="sensitive field without sensitive"),
    pytest.param(('classes = ["identity", "residence"]', 'classes = ["identity", "sensitive"]'),
                 8, "class 'sensitive' needs sensitive = true", id="sensitive class"),
    pytest.param(('classes = ["identity", "residence"]',
                  'classes = ["identity", "residence"]\nsensitive = true'), 9,
                 "names no sensitive field", id="sensitive without a sensitive field"),
    pytest.param(('principals = ["officer"]', 'principals = ["officer", "operator"]'), 6,
                 "'operator' never receives personal data", id="operator given personal data"),
    pytest.param(('principals = ["officer"]', 'principals = [\n  "auditor",\n]'), 7,
                 "'auditor' never receives personal data", id="auditor given personal data"),
    pytest.param(('principals = ["officer"]', 'principals = ["citizen"]'), 9,
                 "own-record purposes", id="citizen outside own record"),
    pytest.param(('jurisdiction = "own_unit"', 'jurisdiction = "own_record"'), 6,
                 "for citizens only", id="own record for officers"),
    pytest.param(('principals = ["officer"]', 'principals = ["officer", "third_party"]'), 6,
                 "needs an approved grant", id="third party without grant"),
    pytest.param(('requires = ["legal_basis"]', 'requires = ["legal_basis", "grant"]'), 9,
                 'exactly when jurisdiction = "grant"', id="grant without grant jurisdiction"),
    pytest.param(('jurisdiction = "own_unit"', 'jurisdiction = "national"'), 9,
                 "officer acts for its own commune only", id="officer nationwide"),
    pytest.param(('requires = ["legal_basis"]', 'requires = []'), 7, "requires nothing",
                 id="no declaration"),
    pytest.param(('requires = ["legal_basis"]\n', ''), 3, "needs requires",
                 id="requires missing"),
    pytest.param(('title = "Registration"', 'title = "Registration"\ncolour = "blue"'), 5,
                 "unknown key 'colour'", id="unknown purpose key"),
    pytest.param(('version = 1', 'version = 1\nowner = "me"'), 2,
                 "unknown top-level key 'owner'", id="unknown top-level key"),
    pytest.param(('version = 1', 'version = 2'), 1, "version must be 1", id="wrong version"),
    pytest.param(('version = 1\n', ''), 1, "version must be 1", id="missing version"),
    pytest.param(('principals = ["officer"]', 'principals = "officer"'), 6,
                 "must be a list of strings", id="wrong type"),
    pytest.param(('[purposes.registration]', '[purposes.Registration]'), 3,
                 "a purpose name is lower-case", id="bad purpose name"),
    pytest.param(('title = "Registration"\n', ''), 3, "title must be non-empty",
                 id="missing title"),
    pytest.param(('actions = [\n    "read",  # "bogus" in a comment is not an action\n'
                  '    "search",\n]', 'actions = ["backup_verify"]'), 8,
                 "none of its actions reads personal data", id="fields without a personal action"),
    pytest.param(('classes = ["identity", "residence"]\n', ''), 9, "need classes or fields",
                 id="personal actions without fields"),
]


@pytest.mark.parametrize(("change", "line", "words"), ERRORS)
def test_policy_error_names_the_line(change: tuple[str, str], line: int, words: str) -> None:
    err = error(edit(*change))
    assert err.line == line, err.message
    assert words in err.message
    assert err.message.startswith(f"test.toml, line {line}: ")


def test_no_purposes() -> None:
    err = error("version = 1\n")
    assert (err.line, err.problem) == (
        1, "the policy defines no purposes ([purposes.NAME] tables)")


def test_policy_error_is_a_configuration_error() -> None:
    err = error("version = 1\n")
    assert isinstance(err, ConfigError)
    assert (err.exit_code, err.code) == (9, "invalid_policy")
    assert err.to_dict()["line"] == 1 and err.to_dict()["source"] == "test.toml"


def test_a_comment_naming_the_value_is_not_its_line() -> None:
    text = edit('    "search",\n', '    "search",\n    "bogus",\n')
    err = error(text)
    assert (err.line, err.problem) == (13, "purpose 'registration': unknown action 'bogus'")


def test_line_of_a_dotted_key_and_a_quoted_table_name() -> None:
    text = edit('[purposes.registration]', '[purposes."registration"]')
    text = edit('jurisdiction = "own_unit"', 'jurisdiction = "everywhere"', text)
    assert error(text).line == 9
    dotted = 'version = 1\npurposes.x.title = "X"\npurposes.x.basis = "B"\n' \
             'purposes.x.principals = ["nobody"]\n'
    assert error(dotted).line == 4
