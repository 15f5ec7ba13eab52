"""docs/access.md keeps up with the code: its tables are rendered here and must appear as is."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from cutru.access import ACTIONS, REASONS, Policy, Requirement, default_policy, load_policy
from cutru.domain.fields import PERSON_FIELDS, SENSITIVE_FIELDS, FieldClass
from cutru.errors import PolicyError

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"


def purposes_table(policy: Policy) -> str:
    lines = ["| Purpose | Who may declare it | Declaration carries | Field classes (+ fields) "
             "| Sensitive fields | Jurisdiction | Actions |",
             "|---|---|---|---|---|---|---|"]
    for p in policy.purposes.values():
        who = ", ".join(sorted(k.value for k in p.principals))
        if p.functions:
            who += f" holding one of: {', '.join(sorted(p.functions))}"
        requires = ", ".join(r.value for r in Requirement if r in p.requires) or "nothing"
        classes = ", ".join(c.value for c in FieldClass
                            if c in p.classes and c is not FieldClass.SENSITIVE)
        extra = sorted(p.named - SENSITIVE_FIELDS)
        fields = " + ".join(x for x in (classes, ", ".join(extra)) if x) or "none"
        sensitive = ", ".join(sorted(p.fields & SENSITIVE_FIELDS)) or "none"
        actions = ", ".join(a for a in ACTIONS if a in p.actions)
        lines.append(f"| `{p.name}` | {who} | {requires} | {fields} | {sensitive} "
                     f"| {p.jurisdiction.value} | {actions} |")
    return "\n".join(lines)


def classes_table() -> str:
    lines = ["| Class | Fields |", "|---|---|"]
    for c in FieldClass:
        names = ", ".join(f"`{f.name}`" for f in PERSON_FIELDS if f.field_class is c)
        lines.append(f"| `{c.value}` | {names} |")
    return "\n".join(lines)


def reasons_table() -> str:
    lines = ["| Reason | Meaning |", "|---|---|"]
    lines += [f"| `{code}` | {meaning} |" for code, meaning in REASONS.items()]
    return "\n".join(lines)


@pytest.mark.parametrize("render", [lambda: purposes_table(default_policy()), classes_table,
                                    reasons_table], ids=["purposes", "classes", "reasons"])
def test_doc_holds_the_current_table(render: object) -> None:
    table = render()  # type: ignore[operator]
    assert table in DOC.read_text(encoding="utf-8"), f"docs/access.md lacks:\n{table}"


def test_doc_names_every_action_and_the_decision_order() -> None:
    text = DOC.read_text(encoding="utf-8")
    for action in ACTIONS:
        assert f"`{action}`" in text, action
    order = re.findall(r"^\d\. \*\*`(\w+)`\*\*", text, re.M)
    assert order == ["purpose", "declaration", "action", "secret_label", "jurisdiction",
                     "grant", "fields"]


@pytest.mark.parametrize("heading", ["## Audit log format", "## Citizens' access log",
                                     "## HTTP API", "## Threat model"])
def test_doc_has_section(heading: str) -> None:
    assert re.search(rf"^{re.escape(heading)}", DOC.read_text(encoding="utf-8"), re.M)


def test_doc_example_policy_loads() -> None:
    example = re.search(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert example
    assert set(load_policy(example.group(1), "example").purposes) == {"housing_support"}


def test_doc_error_example_is_what_the_loader_says() -> None:
    shipped = resources.files("cutru.access").joinpath("default_policy.toml")
    text = shipped.read_text("utf-8").replace('fields = ["ethnicity",', 'fields = ["etnicity",', 1)
    with pytest.raises(PolicyError) as caught:
        load_policy(text, "cutru/access/default_policy.toml")
    assert f"\n{caught.value.message}\n" in DOC.read_text(encoding="utf-8")
