"""The root `provisioner` app: every sub-app and process command, in the order `--help` lists them."""

import typer

from cli import audit, billing, dlq, domains, members, ops, orgs, preview, reconcile, signals, sso, tokens
from cli._common import load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Provisioner: SCIM/SSO provisioning pipeline.")

# Typer lists plain commands before sub-apps, each in registration order; this order is the help's order.
app.command("serve")(ops.serve)
app.command("relay")(ops.relay)
app.command("worker")(ops.worker)
app.command("run")(ops.run)
app.command("reconcile")(reconcile.reconcile)

SUB_APPS = {
    "org": orgs.org_app, "members": members.members_app, "db": ops.db_app, "topics": ops.topics_app, "sso": sso.sso_app,
    "service-token": orgs.service_token_app, "billing": billing.billing_app, "accounts": members.accounts_app,
    "conflicts": members.conflicts_app, "admin-token": orgs.admin_token_app, "dlq": dlq.dlq_app, "audit": audit.audit_app,
    "domains": domains.domains_app, "signals": signals.signals_app,
}  # fmt: skip
assert tokens.__name__  # imported for its commands: list and revoke on the org and token sub-apps
assert preview.__name__  # and for `org preview` and `org go-live`
for name, sub_app in SUB_APPS.items():
    app.add_typer(sub_app, name=name)


def main() -> None:
    """Configure logging from the settings, then run the command line."""
    from core.logs import configure

    configure(load_settings())
    app()
