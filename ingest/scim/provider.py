"""What this SCIM service provider serves and announces (RFC 7643 §5, §6)."""

import hmac
from functools import cached_property
from http import HTTPStatus
from typing import Any, Union

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    BulkRequest,
    BulkResponse,
    ChangePassword,
    EnterpriseUser,
    ETag,
    External,
    Filter,
    Group,
    ListResponse,
    Pagination,
    Patch,
    PatchOp,
    Reference,
    Resource,
    ResourceType,
    ResponseParameters,
    Schema,
    ScimPolicy,
    ScimProvider,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
)
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService

from core.settings import Settings
from ingest.scim.emails import User  # the library's User, its emails kept as sent

DOCS = "https://provisioner.dev/docs/scim"

# RFC 7643 §8.7.1's descriptions of the schemas it defines (the library names them after the model)
_DESCRIPTIONS = {
    "urn:ietf:params:scim:schemas:core:2.0:User": "User Account",
    "urn:ietf:params:scim:schemas:core:2.0:Group": "Group",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": "Enterprise User",
}


class _Provider(ScimProvider):
    """scim2-models' provider, its published schemas described as RFC 7643 §8.7.1 describes them."""

    @cached_property
    def schemas(self) -> tuple[Schema, ...]:
        published = super().schemas  # computed (and cached) by the library, then replaced by this value
        return tuple(s.model_copy(update={"description": _DESCRIPTIONS.get(str(s.id), s.description)}) for s in published)


def build_provider(settings: Settings) -> ScimProvider:
    config = ServiceProviderConfig(
        documentation_uri=Reference[External](DOCS),
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=settings.max_results),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        # RFC 9865: `cursor` and `nextCursor` beside startIndex (the default, as Entra and Okta page by index)
        pagination=Pagination(
            cursor=True, index=True, default_pagination_method=Pagination.DefaultPaginationMethod.index,
            max_page_size=settings.max_results, cursor_timeout=settings.scim_cursor_timeout_seconds,
        ),
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
    return _Provider(
        models=[User, EnterpriseUser, Group],
        resource_types=[
            ResourceType.from_resource(User[EnterpriseUser]),
            ResourceType.from_resource(Group),
        ],
        config=config,
        # Entra replaces `emails[type eq "work"].value` on users that have no work email yet
        # and expects it created (its known-issues page); RFC 7644 §3.5.2.3 would say noTarget.
        policy=ScimPolicy(unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create),
    )


def _accept_directory_domains() -> None:
    """Accept emails on `.local` and `.test` domains, as directories hold them.

    Corporate directories use `.local` domains, and Okta's published SCIM test suite
    provisions `test.user@okta.local`; email-validator refuses special-use names by default.
    """
    import email_validator

    email_validator.SPECIAL_USE_DOMAIN_NAMES = [
        name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES if name not in ("local", "test")
    ]


class Service(ScimService):
    """The library's service, with one cost taken out: a PATCH answered 204 (no attributes
    asked for) carries only the resource's ETag, which the library reads from a published deep
    copy of the whole resource (a group's every member: ~8% of ingest's time in a sync's group
    PATCHes). The answer is the same: `publish` keeps `meta.version` unless ETags are off."""

    def patch_response(self, base_url: str, resource: Resource[Any], response_parameters: Any) -> ScimResponse:
        if response_parameters.attributes or response_parameters.excluded_attributes:
            return super().patch_response(base_url, resource, response_parameters)
        version = resource.meta.version if resource.meta is not None and self.etag_supported else None
        return ScimResponse(HTTPStatus.NO_CONTENT, None, {"ETag": version} if version else {})


def build_service(settings: Settings) -> tuple[ScimService, dict[str, type[Resource[Any]]]]:
    """The protocol service, and the model of each resource type by name."""
    _accept_directory_domains()
    provider = build_provider(settings)
    # the cursors' key, sealed by the library (AES-GCM): every ingest process derives the same one
    secret = hmac.new(settings.secret_key.get_secret_value().encode(), b"provisioner scim cursors", "sha256").digest()
    service = Service(provider, secret=secret)
    models = {type_name(rt): service.get_model(rt) for rt in provider.resource_types}
    _KEPT.extend(_parametrized(service))
    return service, models


_KEPT: list[Any] = []  # strong references to the library's generic classes (see `_parametrized`)


def _parametrized(service: ScimService) -> list[Any]:
    """The generic classes scim2-server builds per request (`ListResponse[User | Group]`, `PatchOp[User]`...).

    pydantic caches a parametrized class only while something else holds it (a WeakValueDictionary),
    and nothing does between requests: each lookup built `ListResponse[...]` again, about 1.5 ms of
    the interpreter, as much as the rest of the lookup. Building them once here and keeping them
    makes every later `X[...]` a cache hit.
    """
    models = service.get_models()
    every: Any = Union[tuple(models)]  # noqa: UP007 (the form scim2-server parametrizes with)
    kept: list[Any] = [ListResponse[every], SearchRequest[every], BulkRequest[every], BulkResponse[every]]
    for resource_type in service.provider.resource_types:
        model: Any = service.get_model(resource_type)
        kept += [model, SearchRequest[Union[(model,)]], ResponseParameters[model], PatchOp[model]]  # noqa: UP007
    return kept


def type_name(resource_type: ResourceType) -> str:
    """The name of a resource type this provider serves ("User" or "Group").

    scim2-models types the name as optional; every type built by `ResourceType.from_resource` has one.
    """
    if resource_type.name is None:
        raise ValueError(f"resource type {resource_type.id!r} has no name")
    return resource_type.name
