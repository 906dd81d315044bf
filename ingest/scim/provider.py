"""What this SCIM service provider serves and announces (RFC 7643 §5, §6)."""

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    External,
    Filter,
    Group,
    Patch,
    Reference,
    Resource,
    ResourceType,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_server.service import ScimService

from core.settings import Settings

DOCS = "https://provisioner.dev/docs/scim"


def build_provider(settings: Settings) -> ScimProvider:
    config = ServiceProviderConfig(
        documentation_uri=Reference[External](DOCS),
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=settings.max_results),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="OAuth Bearer Token",
                description="A per-org bearer token, issued by `provisioner org create` or the admin API.",
                spec_uri=Reference[External]("https://www.rfc-editor.org/rfc/rfc6750"),
                primary=True,
            )
        ],
    )
    return ScimProvider(
        models=[User, EnterpriseUser, Group],
        resource_types=[
            ResourceType.from_resource(User[EnterpriseUser]),
            ResourceType.from_resource(Group),
        ],
        config=config,
    )


def build_service(settings: Settings) -> tuple[ScimService, dict[str, type[Resource[Any]]]]:
    """The protocol service, and the model of each resource type by name."""
    provider = build_provider(settings)
    service = ScimService(provider)
    models = {rt.name: service.get_model(rt) for rt in provider.resource_types}
    return service, models
