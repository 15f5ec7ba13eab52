"""A form for every transaction of the registry, as data: the inputs of each operation and how
the submitted values become the operation's arguments (``Guard.transact``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from cutru.errors import InputError


@dataclass(frozen=True)
class Input:
    """One input: its name (also the argument's), kind, and for a select its vocabulary."""

    name: str
    kind: str = "text"  # text | date | datetime | number | check | select | tel | email
    required: bool = False
    options: str | None = None  # a vocabulary of the catalogue's "enums" (or "fields:…")
    default: str = ""


@dataclass(frozen=True)
class Form:
    operation: str
    subject: str | None  # "person" | "household" | None
    inputs: tuple[Input, ...] = ()
    members: str | None = None  # "separate" | "head": the household members widget
    article: str = ""


LAW = "Law on Residence 68/2020/QH14"
_PLACE = (Input("commune_code", required=True), Input("street", required=True))
_CHANGE = (Input("change_field", "select", True), Input("change_value", required=True))

FORMS: dict[str, Form] = {f.operation: f for f in (
    Form("person.declare", None, (
        Input("full_name", required=True), Input("birth_date", required=True),
        Input("sex", "select", True, "sex"), Input("id_number"),
        Input("nationality", default="VN"), Input("ethnicity"), Input("religion"),
        Input("native_place"), Input("occupation"), Input("phone", "tel"),
        Input("email", "email"), Input("place_commune_code", required=True),
        Input("place_street", required=True), Input("living_since", "date")),
        article=f"{LAW} Art. 26"),
    Form("person.adjust", "person", (*_CHANGE,), article=f"{LAW} Art. 26(1)(b)"),
    Form("correction.request", "person", (
        *_CHANGE, Input("doc_number", required=True), Input("doc_date", "date", True),
        Input("doc_issuer", required=True), Input("reason", required=True)),
        article="Decree 62/2021/NĐ-CP Art. 12"),
    Form("person.death", "person", (Input("on", "date", True),), members="leaving",
         article=f"{LAW} Art. 24(1)(a)"),
    Form("person.missing", "person", (Input("on", "date", True),), members="leaving",
         article=f"{LAW} Art. 24(1)(a)"),
    Form("permanent.register", "person", (
        *_PLACE, Input("basis", "select", True, "residence_basis"),
        Input("start", "date", True), Input("household_key"),
        Input("relationship", "select", False, "relationship"), Input("head_consent", "check"),
        Input("owner_consent", "check"), Input("floor_area_m2", "number")),
        article=f"{LAW} Art. 20-22"),
    Form("permanent.deregister", "person", (
        Input("reason", "select", True, "permanent_reason"), Input("on", "date", True)),
        article=f"{LAW} Art. 24"),
    Form("temporary.register", "person", (
        *_PLACE, Input("start", "date", True), Input("term_end", "date", True),
        Input("basis", "select", False, "residence_basis", "rented"),
        Input("guardian_consent", "check")), article=f"{LAW} Art. 27-28"),
    Form("temporary.extend", "person", (
        Input("new_term_end", "date", True), Input("applied_on", "date", True)),
        article=f"{LAW} Art. 28(3)"),
    Form("temporary.deregister", "person", (
        Input("reason", "select", True, "temporary_reason"), Input("on", "date", True)),
        article=f"{LAW} Art. 29"),
    Form("stay.notify", None, (
        *_PLACE, Input("full_name", required=True), Input("document_number", required=True),
        Input("arrival", "datetime", True), Input("departure", "date", True),
        Input("reason", required=True), Input("notified_at", "datetime", True)),
        article=f"{LAW} Art. 30"),
    Form("absence.declare", "person", (
        Input("category", "select", True, "absence_category"), Input("start", "date", True),
        Input("end", "date", True), Input("destination", required=True), Input("reason")),
        article=f"{LAW} Art. 31"),
    Form("residence.confirm", "person", (), article="Circular 55/2021/TT-BCA Art. 17"),
    Form("household.separate", "household", (
        Input("head_consent", "check"), Input("owner_consent", "check"),
        Input("divorced_spouse", "check")), members="separate",
        article=f"{LAW} Art. 25"),
    Form("household.change_head", "household", (), members="head",
         article=f"{LAW} Art. 26(1)(a)"),
    Form("address.readdress", None, (
        Input("old_commune_code", required=True), Input("new_commune_code", required=True)),
        article=f"{LAW} Art. 26(1)(c)"),
)}
#: Operations decided in the commune-police head's queue, not on a form of their own.
IN_QUEUE = ("correction.approve", "correction.reject")
#: Plain-text fields offered for an adjustment or a correction (nested ones need the API).
SIMPLE_FIELDS = frozenset({
    "full_name", "other_names", "birth_date", "sex", "id_number", "birth_registration_place",
    "native_place", "ethnicity", "religion", "nationality", "marital_status", "blood_group",
    "occupation", "phone", "email", "postal_address", "death_date", "missing_date"})


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _required(form: FormData, spec: Form) -> None:
    for item in spec.inputs:
        if item.required and item.kind != "check" and not _text(form, item.name):
            raise InputError(f"{item.name} is required", field=item.name, rule="required")


def _relationships(form: FormData, new_head: str) -> dict[str, str]:
    return {str(k)[4:]: str(v) for k, v in form.multi_items()
            if str(k).startswith("rel.") and str(k)[4:] != new_head and v}


def arguments(spec: Form, form: FormData, subject: str | None) -> dict[str, Any]:
    """The operation's keyword arguments from a submitted form (values checked by the
    registry's rules, not here: only presence and number syntax)."""
    _required(form, spec)
    args: dict[str, Any] = {}
    for item in spec.inputs:
        raw = _text(form, item.name)
        if item.kind == "check":
            args[item.name] = raw == "on"
        elif item.kind == "number" and raw:
            try:
                args[item.name] = float(raw.replace(",", "."))
            except ValueError:
                raise InputError(f"{item.name} must be a number", field=item.name,
                                 rule="number.format") from None
        elif raw:
            args[item.name] = raw
    if spec.subject == "person" and subject:
        args["person_key"] = subject
    if spec.subject == "household" and subject:
        args["household_key"] = subject
    return _shape(spec, form, args)


def _shape(spec: Form, form: FormData, args: dict[str, Any]) -> dict[str, Any]:
    op = spec.operation
    if op in ("person.adjust", "correction.request"):
        args["changes"] = {args.pop("change_field"): args.pop("change_value")}
    if op == "person.declare":
        place = {"commune_code": args.pop("place_commune_code"),
                 "street": args.pop("place_street")}
        since = args.pop("living_since", None)
        person = {**args, "current_living_place": place}
        if since:
            person["current_living_since"] = since
        return {"person": person}
    if spec.members:
        new_head = _text(form, "new_head_key")
        if new_head:
            args["new_head_key"] = new_head
        elif spec.members != "leaving":
            raise InputError("choose the new household head", field="new_head_key",
                             rule="required")
        rels = _relationships(form, new_head)
        if spec.members == "separate":
            args["member_keys"] = [str(v) for v in form.getlist("member_keys")]
            rels = {k: v for k, v in rels.items() if k in args["member_keys"]}
        if spec.members != "leaving" or new_head:
            args["relationships"] = rels
    return args


#: The input a rule of the law concerns, for rules whose error names no field.
RULE_INPUTS = {
    "temporary.term_max_2_years": "term_end", "temporary.term_positive": "term_end",
    "temporary.outside_permanent_commune": "commune_code",
    "temporary.minor_consent": "guardian_consent", "temporary.extension_15_days": "applied_on",
    "temporary.extension_later": "new_term_end", "permanent.owner_consent": "owner_consent",
    "permanent.min_floor_area": "floor_area_m2", "permanent.relative_consent": "head_consent",
    "permanent.join_consent": "head_consent", "permanent.relative_household": "household_key",
    "permanent.already_registered": "street", "permanent.child_under_6_age": "basis",
    "stay.under_30_days": "departure", "stay.period_order": "departure",
    "stay.notify_deadline": "notified_at", "absence.min_period": "end",
    "absence.requires_permanent": "category", "absence.registered_elsewhere": "category",
    "separation.consent": "head_consent", "separation.capacity": "member_keys",
    "separation.not_head": "member_keys", "separation.someone_remains": "member_keys",
    "household.head_is_member": "new_head_key", "household.exactly_one_head": "new_head_key",
}


def error_input(spec: Form, field: str | None, rule: str | None = None) -> str | None:
    """The input of this form that an error concerns (by its field, else by its rule)."""
    names = {i.name for i in spec.inputs} | {"new_head_key", "member_keys"}
    if not field:
        found = RULE_INPUTS.get(rule or "")
        return found if found in names else None
    if field in names:
        return field
    if field.startswith("current_living_place."):
        return "place_" + field.split(".", 1)[1]
    if field.startswith("relationships."):
        return "rel." + field.split(".", 1)[1]
    if "change_field" in names:
        wrong_field = rule in ("field.unknown", "adjustment.needs_correction") or \
            field == "changes"
        return "change_field" if wrong_field else "change_value"
    return None
