"""Verified email domains: an org claims a domain, proves it controls it with a DNS TXT record (or
support staff vouch for it), and may then acquire accounts on it. A domain is verified by at most one org.
"""

import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

import dns.exception
import dns.nameserver
import dns.resolver
from sqlalchemy import Connection, select

from core.settings import Settings
from core.tables import org_domains
from domain import orgs
from domain.admin import AdminError
from domain.ownership import DomainError, DomainMethod, OrgDomain, normalise_domain
from domain.postgres_ownership import org_domain
from domain.uow import UnitOfWork
from events import catalogue as c

log = logging.getLogger(__name__)

# Said to an org whose domain another org has verified: that there is one, never which.
VERIFIED_ELSEWHERE = (
    "{domain} is verified by another organisation (a domain is verified by at most one); "
    "contact support if your organisation controls it"
)


class TxtResolver(Protocol):
    """What `verify` asks DNS through: dnspython's Resolver, or a stand-in in unit tests."""

    def resolve(self, qname: str, rdtype: str) -> Iterable[Any]: ...


def resolver(settings: Settings) -> dns.resolver.Resolver:
    """A resolver on the configured nameservers (the system's when none are), giving up after
    `dns_timeout_seconds`; it keeps no cache, so a record just published is seen at once."""
    addresses = settings.dns_nameserver_addresses()
    found = dns.resolver.Resolver(configure=not addresses)
    if addresses:
        found.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in addresses]
    found.timeout = found.lifetime = settings.dns_timeout_seconds
    return found


def view(claim: OrgDomain) -> dict[str, Any]:
    """A domain as the admin API, console and CLI show it to its org: its state and the TXT record to publish."""
    return {
        "domain": claim.domain,
        "status": "verified" if claim.verified_at else "pending",
        "method": str(claim.method) if claim.method else None,
        "verified_at": claim.verified_at.isoformat() if claim.verified_at else None,
        "verified_by": claim.verified_by,
        "created_at": claim.created_at.isoformat(),
        "record": {"type": "TXT", "name": claim.record_name, "value": claim.record_value},
    }


def _name(domain: str) -> str:
    try:
        return normalise_domain(domain)
    except DomainError as exc:
        raise AdminError(400, str(exc)) from None


def add(uow: UnitOfWork, org: orgs.Org, domain: str, actor: str, verified: bool = False) -> dict[str, Any]:
    """Claim a domain and return the TXT record that proves it (the same one each time for the same
    org); `verified` is support's override, which verifies it at once. A domain another org has
    verified is refused."""
    name = _name(domain)
    if uow.domains.verifier(name) not in (None, org.id):
        raise AdminError(409, VERIFIED_ELSEWHERE.format(domain=name))
    uow.domains.add_if_absent(org.id, name, secrets.token_urlsafe(24))
    claim = uow.domains.get(org.id, name)
    assert claim is not None
    if verified and claim.verified_at is None:
        claim = _mark_verified(uow, org, claim, DomainMethod.SUPPORT, actor)
        # the DomainVerified event is the audit record; the log line tells operators at once
        log.info(
            "domain %s of org %s verified by support (%s)", name, org.slug, actor,
            extra={"org_id": org.id, "domain": name, "actor": actor},
        )  # fmt: skip
    return view(claim)


def verify(uow: UnitOfWork, org: orgs.Org, domain: str, actor: str, txt: TxtResolver) -> dict[str, Any]:
    """Look the domain's TXT challenge up in DNS and, when it holds the org's value, mark the domain
    verified; otherwise refuse, saying what was expected and what was found, and change nothing."""
    name = _name(domain)
    claim = uow.domains.get(org.id, name)
    if claim is None:
        raise AdminError(404, f"{name} is not a domain of this organisation: add it first to get the TXT record to publish")
    if claim.verified_at is not None:
        return view(claim)
    if uow.domains.verifier(name) not in (None, org.id):
        raise AdminError(409, VERIFIED_ELSEWHERE.format(domain=name))
    values = _lookup(txt, claim)
    if claim.record_value not in values:
        found = ", ".join(f'"{v}"' for v in values)
        raise AdminError(409, _not_found(claim, f"TXT value{'s' if len(values) > 1 else ''} {found}"))
    return view(_mark_verified(uow, org, claim, DomainMethod.DNS, actor))


def list_domains(conn: Connection, org: orgs.Org) -> list[dict[str, Any]]:
    """The org's domains, verified or pending, by name."""
    rows = conn.execute(select(org_domains).where(org_domains.c.org_id == org.id).order_by(org_domains.c.domain))
    return [view(org_domain(row)) for row in rows]


def _mark_verified(uow: UnitOfWork, org: orgs.Org, claim: OrgDomain, method: DomainMethod, actor: str) -> OrgDomain:
    at = datetime.now(UTC)
    if not uow.domains.mark_verified(org.id, claim.domain, method=method, actor=actor, at=at):
        raise AdminError(409, VERIFIED_ELSEWHERE.format(domain=claim.domain))
    uow.stage_fact(c.DomainVerified(domain=claim.domain, method=method, actor=actor), org_id=org.id, org_slug=org.slug)
    verified = uow.domains.get(org.id, claim.domain)
    assert verified is not None
    return verified


def _not_found(claim: OrgDomain, found: str) -> str:
    return (
        f"{claim.domain} is not verified: expected a TXT record at {claim.record_name} with the value "
        f'"{claim.record_value}", found {found}. Publish the record (DNS changes can take a while to appear), then verify again.'
    )


def _lookup(txt: TxtResolver, claim: OrgDomain) -> list[str]:
    """The TXT values at the challenge's name (each record's strings joined, as RFC 7208 §3.3 reads
    them); an answer without them is a refusal saying what was expected and what was found."""
    try:
        answer = txt.resolve(claim.record_name, "TXT")
    except dns.resolver.NXDOMAIN:
        raise AdminError(409, _not_found(claim, "no such name (NXDOMAIN)")) from None
    except dns.resolver.NoAnswer:
        raise AdminError(409, _not_found(claim, "no TXT record at that name (the name exists)")) from None
    except dns.exception.Timeout:
        raise AdminError(409, _not_found(claim, "no answer: the DNS lookup timed out")) from None
    except dns.resolver.NoNameservers:
        raise AdminError(409, _not_found(claim, "no answer: the nameservers failed or refused the query")) from None
    except dns.exception.DNSException as exc:
        raise AdminError(409, _not_found(claim, f"no answer: the DNS lookup failed ({exc})")) from None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
