"""The admin API's domain routes: the org's email domains, the DNS TXT challenge that proves one,
and its verification (only then may the org acquire accounts on it)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain import domains
from ingest.admin.deps import Admin, Api, resource_router
from ingest.admin.errors import ERRORS, WITH_BODY, documented

router = resource_router("domains")


class TxtRecord(BaseModel):
    """The DNS record that proves the organisation controls the domain."""

    type: Literal["TXT"]
    name: str = Field(examples=["_provisioner-challenge.example.com"])
    value: str = Field(examples=["provisioner-domain-verification=2b7Yc0..."])


class Domain(BaseModel):
    """An email domain of the organisation; accounts on it can be acquired once it is verified."""

    domain: str = Field(description="Lower-cased, international names in IDNA form (`xn--...`).", examples=["example.com"])
    status: Literal["pending", "verified"]
    method: Literal["dns", "support"] | None = Field(description="How it was verified: its TXT record, or by support.")
    verified_at: datetime | None
    verified_by: str | None = Field(description="Who verified it (the admin or support staff), for the audit trail.")
    created_at: datetime
    record: TxtRecord = Field(description="Publish this record, then verify the domain.")


class NewDomain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(min_length=1, max_length=300, examples=["example.com"])


@router.get("/org/domains", response_model=list[Domain], responses=ERRORS)
def get_domains(who: Admin, api: Api) -> list[Domain]:
    """The organisation's email domains, verified or pending, with the TXT record of each."""
    with api.transaction(who) as (uow, org):
        return [Domain(**d) for d in domains.list_domains(uow.conn, org)]


@router.post("/org/domains", response_model=Domain, responses=documented(400, 409, *WITH_BODY))
def add_domain(new: NewDomain, who: Admin, api: Api) -> Domain:
    """Claim an email domain: answers the TXT record to publish (the same one when asked again). A
    domain another organisation has verified is refused (409)."""
    with api.transaction(who) as (uow, org):
        return Domain(**domains.add(uow, org, new.domain, who.actor))


@router.post("/org/domains/{domain}/verify", response_model=Domain, responses=documented(400, 404, 409, 422))
def verify_domain(domain: str, who: Admin, api: Api) -> Domain:
    """Look the domain's TXT record up in DNS; verified when it holds this organisation's value.
    Otherwise 409, saying what was expected and what DNS answered; nothing changes."""
    with api.transaction(who) as (uow, org):
        return Domain(**domains.verify(uow, org, domain, who.actor, domains.resolver(api.settings)))
