"""``cutru tx …``: every Law on Residence transaction, one command each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cutru.cli.common import console, load_json_arg, registry
from cutru.cli.errors import handled
from cutru.services.registry import Registry

app = typer.Typer(help="Residence transactions (Law on Residence 68/2020).",
                  no_args_is_help=True)

Actor = Annotated[str, typer.Option(help="Who performs the transaction (officer account).")]
Purpose = Annotated[str, typer.Option(help="Legal basis or case recorded in the journal.")]
IdNumber = Annotated[str | None, typer.Option(help="The person's ID number.")]
PersonKey = Annotated[str | None, typer.Option("--person", help="The person's internal key.")]
Commune = Annotated[str, typer.Option(help="5-digit commune code.")]
Street = Annotated[str, typer.Option(help="House number and street.")]
DEFAULT_PURPOSE = "Law on Residence 68/2020/QH14"


def _person(reg: Registry, id_number: str | None, person: str | None) -> str:
    if person:
        return person
    if id_number:
        return reg.find(id_number)
    from cutru.errors import InputError
    raise InputError("give --id-number or --person", field="id_number", rule="required")


def _done(what: str, key: Any = None) -> None:
    console.print(f"{what}" + (f": {key}" if key else ""))


@app.command("declare")
def declare(ctx: typer.Context, actor: Actor,
            data: Annotated[str | None, typer.Option(help="Person as a JSON object.")] = None,
            data_file: Annotated[Path | None, typer.Option(help="Person JSON file.")] = None,
            purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Record a person (declaring residence information)."""
    with handled(), registry(ctx) as reg:
        _done("person declared", reg.declare_person(actor, purpose,
                                                    load_json_arg(data, data_file, "data")))


@app.command("register-permanent")
def register_permanent(
    ctx: typer.Context, actor: Actor, start: Annotated[str, typer.Option()],
    basis: Annotated[str, typer.Option(help="own_residence|relative|rented|child_under_6")],
    id_number: IdNumber = None, person: PersonKey = None,
    commune_code: Annotated[str | None, typer.Option(help="New household: commune code.")] = None,
    street: Annotated[str | None, typer.Option(help="New household: street address.")] = None,
    household: Annotated[str | None, typer.Option(help="Join this household.")] = None,
    relationship: Annotated[str | None, typer.Option(help="Relationship to the head.")] = None,
    head_consent: bool = False, owner_consent: bool = False,
    floor_area_m2: Annotated[float | None, typer.Option()] = None,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> None:
    """Permanent registration (Art. 20-22)."""
    with handled(), registry(ctx) as reg:
        key = reg.register_permanent(
            actor, purpose, _person(reg, id_number, person), commune_code=commune_code or "",
            street=street or "", basis=basis, start=start, household_key=household,
            relationship=relationship, head_consent=head_consent, owner_consent=owner_consent,
            floor_area_m2=floor_area_m2)
        _done("permanent residence registered", key)


@app.command("deregister-permanent")
def deregister_permanent(ctx: typer.Context, actor: Actor,
                         reason: Annotated[str, typer.Option()],
                         on: Annotated[str, typer.Option()], id_number: IdNumber = None,
                         person: PersonKey = None, purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Permanent deregistration (Art. 24)."""
    with handled(), registry(ctx) as reg:
        reg.deregister_permanent(actor, purpose, _person(reg, id_number, person), reason=reason,
                                 on=on)
        _done("permanent residence deregistered")


@app.command("register-temporary")
def register_temporary(ctx: typer.Context, actor: Actor, commune_code: Commune, street: Street,
                       start: Annotated[str, typer.Option()],
                       term_end: Annotated[str, typer.Option()],
                       id_number: IdNumber = None, person: PersonKey = None,
                       basis: str = "rented", guardian_consent: bool = False,
                       purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Temporary registration (Art. 27-28); term at most 2 years."""
    with handled(), registry(ctx) as reg:
        _done("temporary residence registered", reg.register_temporary(
            actor, purpose, _person(reg, id_number, person), commune_code=commune_code,
            street=street, start=start, term_end=term_end, basis=basis,
            guardian_consent=guardian_consent))


@app.command("extend-temporary")
def extend_temporary(ctx: typer.Context, actor: Actor,
                     new_term_end: Annotated[str, typer.Option()],
                     applied_on: Annotated[str, typer.Option()], id_number: IdNumber = None,
                     person: PersonKey = None, purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Extension of a temporary residence (Art. 28(3))."""
    with handled(), registry(ctx) as reg:
        reg.extend_temporary(actor, purpose, _person(reg, id_number, person),
                             new_term_end=new_term_end, applied_on=applied_on)
        _done("temporary residence extended")


@app.command("deregister-temporary")
def deregister_temporary(ctx: typer.Context, actor: Actor,
                         reason: Annotated[str, typer.Option()],
                         on: Annotated[str, typer.Option()], id_number: IdNumber = None,
                         person: PersonKey = None, purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Temporary deregistration (Art. 29)."""
    with handled(), registry(ctx) as reg:
        reg.deregister_temporary(actor, purpose, _person(reg, id_number, person), reason=reason,
                                 on=on)
        _done("temporary residence deregistered")


@app.command("notify-stay")
def notify_stay(ctx: typer.Context, actor: Actor, commune_code: Commune, street: Street,
                full_name: Annotated[str, typer.Option()],
                document_number: Annotated[str, typer.Option(help="ID or passport number.")],
                arrival: Annotated[str, typer.Option(help="Local date-time of arrival.")],
                departure: Annotated[str, typer.Option()], reason: Annotated[str, typer.Option()],
                notified_at: Annotated[str, typer.Option()], person: PersonKey = None,
                purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Stay notification (Art. 30)."""
    with handled(), registry(ctx) as reg:
        _done("stay notified", reg.notify_stay(
            actor, purpose, commune_code=commune_code, street=street, full_name=full_name,
            document_number=document_number, arrival=arrival, departure=departure,
            reason=reason, notified_at=notified_at, person_key=person))


@app.command("declare-absence")
def declare_absence(ctx: typer.Context, actor: Actor,
                    category: Annotated[str, typer.Option(help="supervised|military_age|other")],
                    start: Annotated[str, typer.Option()], end: Annotated[str, typer.Option()],
                    destination: Annotated[str, typer.Option()],
                    reason: Annotated[str, typer.Option()] = "", id_number: IdNumber = None,
                    person: PersonKey = None, purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Temporary-absence declaration (Art. 31)."""
    with handled(), registry(ctx) as reg:
        _done("absence declared", reg.declare_absence(
            actor, purpose, _person(reg, id_number, person), category=category, start=start,
            end=end, destination=destination, reason=reason))


@app.command("separate-household")
def separate_household(
    ctx: typer.Context, actor: Actor, household: Annotated[str, typer.Option()],
    members: Annotated[list[str], typer.Option("--member", help="Separating member (repeat).")],
    new_head: Annotated[str, typer.Option()],
    relationships: Annotated[str, typer.Option(help="JSON {person_key: relationship}.")] = "{}",
    head_consent: bool = False, owner_consent: bool = False, divorced_spouse: bool = False,
    purpose: Purpose = DEFAULT_PURPOSE,
) -> None:
    """Household separation (Art. 25)."""
    with handled(), registry(ctx) as reg:
        _done("household separated", reg.separate_household(
            actor, purpose, household, member_keys=members, new_head_key=new_head,
            relationships=load_json_arg(relationships, None, "relationships"),
            head_consent=head_consent, owner_consent=owner_consent,
            divorced_spouse=divorced_spouse))


@app.command("change-head")
def change_head(ctx: typer.Context, actor: Actor, household: Annotated[str, typer.Option()],
                new_head: Annotated[str, typer.Option()],
                relationships: Annotated[str, typer.Option(
                    help="JSON {person_key: relationship to the new head}.")],
                purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Change of household head (Art. 26(1)(a))."""
    with handled(), registry(ctx) as reg:
        reg.change_head(actor, purpose, household, new_head,
                        load_json_arg(relationships, None, "relationships"))
        _done("household head changed")


@app.command("adjust")
def adjust(ctx: typer.Context, actor: Actor,
           changes: Annotated[str, typer.Option(help="JSON {field: new value}.")],
           id_number: IdNumber = None, person: PersonKey = None,
           purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Adjustment of residence information (Art. 26(1)(b))."""
    with handled(), registry(ctx) as reg:
        diff = reg.adjust_information(actor, purpose, _person(reg, id_number, person),
                                      load_json_arg(changes, None, "changes"))
        _done("adjusted fields", ", ".join(sorted(diff)) or "(none changed)")


@app.command("readdress")
def readdress(ctx: typer.Context, actor: Actor, old_commune_code: Commune,
              new_commune_code: Commune, purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Re-addressing after a boundary or name change (Art. 26(1)(c))."""
    with handled(), registry(ctx) as reg:
        n = reg.readdress(actor, purpose, old_commune_code=old_commune_code,
                          new_commune_code=new_commune_code)
        _done("residences re-addressed", n)


@app.command("death")
def death(ctx: typer.Context, actor: Actor, on: Annotated[str, typer.Option()],
          id_number: IdNumber = None, person: PersonKey = None, missing: bool = False,
          new_head: Annotated[str | None, typer.Option()] = None,
          relationships: Annotated[str, typer.Option()] = "{}",
          purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Record a death (or, with --missing, a declaration of missing)."""
    with handled(), registry(ctx) as reg:
        reg.record_death(actor, purpose, _person(reg, id_number, person), on=on,
                         missing=missing, new_head_key=new_head,
                         relationships=load_json_arg(relationships, None, "relationships"))
        _done("recorded")


@app.command("request-correction")
def request_correction(ctx: typer.Context, actor: Actor,
                       changes: Annotated[str, typer.Option(help="JSON {field: value}.")],
                       doc_number: Annotated[str, typer.Option()],
                       doc_date: Annotated[str, typer.Option()],
                       doc_issuer: Annotated[str, typer.Option()],
                       reason: Annotated[str, typer.Option()],
                       id_number: IdNumber = None, person: PersonKey = None,
                       purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Request a correction (Decree 62 Art. 12): needs the authority's document."""
    with handled(), registry(ctx) as reg:
        _done("correction requested", reg.request_correction(
            actor, purpose, _person(reg, id_number, person),
            load_json_arg(changes, None, "changes"), doc_number=doc_number,
            doc_date=doc_date, doc_issuer=doc_issuer, reason=reason))


@app.command("decide-correction")
def decide_correction(ctx: typer.Context, actor: Actor,
                      correction: Annotated[str, typer.Option()],
                      approve: Annotated[bool, typer.Option("--approve/--reject")],
                      purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Approve or reject a correction; the approver differs from the requester (four eyes)."""
    with handled(), registry(ctx) as reg:
        reg.decide_correction(actor, purpose, correction, approve)
        _done("correction " + ("approved" if approve else "rejected"))


@app.command("confirm")
def confirm(ctx: typer.Context, actor: Actor, id_number: IdNumber = None,
            person: PersonKey = None, purpose: Purpose = DEFAULT_PURPOSE) -> None:
    """Residence confirmation (Circular 55/2021 Art. 17): valid one year."""
    with handled(), registry(ctx) as reg:
        key = reg.confirm_residence(actor, purpose, _person(reg, id_number, person))
        content = reg.person(_person(reg, id_number, person))["residences"]
        console.print(json.dumps({"confirmation": key, "residences": content},
                                 ensure_ascii=False, indent=2))
