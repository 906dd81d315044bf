"""The IdP setup guides (docs/idp/*.md) in the console: which values to paste where, per IdP, on
the Provisioning page, and each guide rendered as a console page (markdown-it-py, raw HTML off, so
a guide's text is escaped like every other value)."""

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

GUIDES = Path(__file__).resolve().parents[2] / "docs" / "idp"


@dataclass(frozen=True)
class Field:
    label: str  # the field's name in the IdP's admin UI
    value: str  # what to paste; `BASE_URL` and `TOKEN` stand for the org's values
    copy: bool = False


@dataclass(frozen=True)
class Idp:
    key: str  # the guide's file name, without `.md`
    label: str
    where: str  # where in the IdP's admin UI the fields are
    fields: tuple[Field, ...]


BASE_URL, TOKEN = "BASE_URL", "TOKEN"
IDPS = {
    idp.key: idp
    for idp in (
        Idp(
            "entra-id", "Microsoft Entra ID",
            "Enterprise applications → your application → Provisioning → Provisioning Mode: Automatic → "
            "Admin Credentials, then Test Connection",
            (Field("Tenant URL", BASE_URL, copy=True), Field("Secret Token", TOKEN)),
        ),
        Idp(
            "okta", "Okta",
            "Applications → Applications → your app integration → Provisioning → Settings: Integration → Edit",
            (
                Field("SCIM connector base URL", BASE_URL, copy=True), Field("Unique identifier field for users", "userName"),
                Field("Authentication Mode", "HTTP Header"), Field("Authorization (Bearer)", TOKEN),
            ),
        ),
        Idp(
            "onelogin", "OneLogin",
            "Applications → your SCIM Provisioner with SAML (SCIM v2 Enterprise) app → Configuration, then API Status: Enable",
            (Field("SCIM Base URL", BASE_URL, copy=True), Field("SCIM Bearer Token", TOKEN)),
        ),
        Idp(
            "generic-scim", "Another SCIM 2.0 client",
            "your client's SCIM settings",
            (Field("Base URL", BASE_URL, copy=True), Field("Authorization header", "Bearer " + TOKEN)),
        ),
    )
}  # fmt: skip

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_GUIDE_LINK = re.compile(r'href="(' + "|".join(map(re.escape, [*IDPS, "README"])) + r')\.md(#[^"]*)?"')
_OTHER_DOC_LINK = re.compile(r'<a href="\.\./[^"]*">(.*?)</a>')


def fields_for(idp: Idp, base_url: str, token: str | None) -> list[dict[str, object]]:
    """The fields to fill in, with the org's values (the token only while it is shown, once)."""
    shown = []
    for field in idp.fields:
        value = field.value.replace(BASE_URL, base_url)
        secret = TOKEN in value
        if secret:
            value = value.replace(TOKEN, token) if token else value.replace(TOKEN, "your bearer token (rotate to issue one)")
        shown.append({"label": field.label, "value": value, "copyable": field.copy or (secret and bool(token))})
    return shown


@cache
def rendered(key: str, prefix: str) -> tuple[str, str] | None:
    """(title, HTML) of the guide `key`, its links to the other guides pointing at their console
    pages; None when there is no such guide (or it was not shipped)."""
    if key not in IDPS and key != "README":
        return None
    try:
        text = (GUIDES / f"{key}.md").read_text(encoding="utf-8")
    except OSError:
        return None
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), key)
    html = _MARKDOWN.render(text)
    html = _GUIDE_LINK.sub(lambda m: f'href="{prefix}/guides/{m.group(1)}{m.group(2) or ""}"', html)
    return title, _OTHER_DOC_LINK.sub(r"\1", html)
