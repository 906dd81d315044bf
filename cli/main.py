"""The root `provisioner` app: every sub-app and process command, in the order `--help` lists them."""

import typer

from cli import audit, billing, dlq, members, ops, orgs, sso
from cli._common import load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Provisioner: SCIM/SSO provisioning pipeline.")

# Typer lists plain commands before sub-apps, each in registration order; this order is the help's order.
app.command("serve")(ops.serve)
app.command("relay")(ops.relay)
app.command("worker")(ops.worker)
app.command("run")(ops.run)

app.add_typer(orgs.org_app, name="org")
app.add_typer(members.members_app, name="members")
app.add_typer(ops.db_app, name="db")
app.add_typer(ops.topics_app, name="topics")
app.add_typer(sso.sso_app, name="sso")
app.add_typer(orgs.service_token_app, name="service-token")
app.add_typer(billing.billing_app, name="billing")
app.add_typer(members.accounts_app, name="accounts")
app.add_typer(members.conflicts_app, name="conflicts")
app.add_typer(orgs.admin_token_app, name="admin-token")
app.add_typer(dlq.dlq_app, name="dlq")
app.add_typer(audit.audit_app, name="audit")


def main() -> None:
    """Configure logging from the settings, then run the command line."""
    from core.logs import configure

    configure(load_settings())
    app()
