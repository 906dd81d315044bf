"""Rewrite the request bodies real IdPs send into shapes RFC 7643/7644 allow.

The ingest passes every POST, PUT and PATCH body of /Users and /Groups through
:func:`normalize_body` before scim2-server and scim2-models validate it. The
functions here are pure: no I/O, no stored resource, and the input is never
mutated.

Only shapes the library refuses are rewritten. Checked against scim2-models
0.12.3 / scim2-server 0.8.3 with the default policy, the library already
accepts: ``op`` in any case ("Replace", "Add", "Remove"); booleans sent as
strings ("True", "False"), with or without a path; pathless replace values
whose keys are dotted paths ("name.givenName") or URN-qualified attributes;
attribute names in any case; ``application/json``; well-formed ``id``,
``meta`` and ``groups`` in POST/PUT (ignored); ``password`` (writeOnly);
Okta's pathless ``{"active": false}``, its group rename carrying the group's
own ``id``, and members in POST/PUT group bodies.

Sources: Microsoft Entra "Known issues and resolutions with SCIM 2.0 protocol
compliance" (with and without the ``aadOptscim062020`` flag) and "Tutorial:
Develop and plan provisioning for a SCIM endpoint"; Okta "SCIM 2.0 Protocol
Reference"; OneLogin "SCIM Provisioner with SAML (SCIM v2 Enterprise)" JSON
template.
"""

from __future__ import annotations

import copy
import json
from typing import Any

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
_MANAGER_PATH = f"{ENTERPRISE_USER}:manager".lower()
_CORE_SCHEMAS = {
    "User": "urn:ietf:params:scim:schemas:core:2.0:User",
    "Group": "urn:ietf:params:scim:schemas:core:2.0:Group",
}
# RFC 7643 §4.3: no core User attribute has one of these names, so an
# unqualified path naming one of them can only mean the enterprise extension.
_ENTERPRISE_ATTRIBUTES = frozenset(
    {"employeenumber", "costcenter", "organization", "division", "department", "manager"}
)
# Top-level attributes whose mutability is readOnly (RFC 7643 §3.1, §4.1.2).
# password is writeOnly, not readOnly: it is kept.
_READ_ONLY = {"User": frozenset({"id", "meta", "groups"}), "Group": frozenset({"id", "meta"})}


def normalize_body(resource_type: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``body`` that the SCIM library accepts, with the same meaning.

    ``resource_type`` is "User" or "Group"; ``method`` is "POST", "PUT" or
    "PATCH". Any other method, resource type or body shape is returned as an
    unchanged copy, for the library to judge.
    """
    result = copy.deepcopy(body)
    if not isinstance(result, dict) or resource_type not in _CORE_SCHEMAS:
        return result
    method = method.upper()
    if method in ("POST", "PUT"):
        return _normalize_resource(resource_type, result)
    if method == "PATCH":
        return _normalize_patch(resource_type, result)
    return result


def _normalize_resource(resource_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """Apply the POST/PUT rules to a whole resource."""
    body = _drop_nulls(body)
    body = {k: v for k, v in body.items() if k.lower() not in _READ_ONLY[resource_type]}
    body = _drop_undeclared_schemas(resource_type, body)
    if resource_type == "User":
        for key, extension in body.items():
            if key.lower() == ENTERPRISE_USER.lower() and isinstance(extension, dict):
                body[key] = _normalize_extension(extension)
    return body


def _drop_nulls(value: Any) -> Any:
    """Remove null attributes and null list items, at any depth.

    RFC 7644 §3.5.1 makes null equivalent to unassigned, so this keeps the
    meaning. Entra's tutorial (Example 2, provision a user) sends
    ``"addresses": null``, ``"title": null`` and, at the top level,
    ``"department": null, "manager": null``; the library refuses the last two
    as undeclared core attributes. Entra also sends ``"$ref": null`` members.
    """
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def _drop_undeclared_schemas(resource_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """Keep in ``schemas`` only the core schema and the extensions the body fills.

    An extension URI without attributes in the body carries nothing, yet the
    library refuses one it does not know. Entra's tutorial sends
    ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group``
    when it creates a group, and ``...:enterprise:2.0User`` (sic) in Example 2.
    A body that does not name the core schema is left alone: it is refused.
    """
    schemas = body.get("schemas")
    if not isinstance(schemas, list):
        return body
    keys = {k.lower() for k in body}
    core = _CORE_SCHEMAS[resource_type].lower()
    if core not in {s.lower() for s in schemas if isinstance(s, str)}:
        return body
    kept = [s for s in schemas if not isinstance(s, str) or s.lower() == core or s.lower() in keys]
    return {**body, "schemas": kept}


def _normalize_extension(extension: dict[str, Any]) -> dict[str, Any]:
    """Normalize ``manager`` in an enterprise extension object; drop it when empty."""
    result = dict(extension)
    for key in list(result):
        if key.lower() == "manager":
            manager = _normalize_manager(result[key])
            if manager is None:
                del result[key]
            else:
                result[key] = manager
    return result


def _normalize_manager(value: Any) -> Any:
    """Return ``manager`` as the complex value RFC 7643 §4.3 defines, or None if empty.

    Entra sends the manager id as a bare string, in the extension object and
    as a PATCH value (reported against Entra in scim-sdk #686 and
    directory-scimple #1242), and its tutorial (Example 5) sends a one-item
    array ``[{"$ref": ..., "value": id}]``. OneLogin's SCIM v2 Enterprise
    template sends ``{"value": id, "displayName": ...}``, with an empty value
    when the user has no manager. Shapes not recognised are returned as is.
    RFC 7643 §4.3 makes ``$ref`` required and no IdP sends it, so it is derived
    from the id, relative to the SCIM root (the server turns it into a URL).
    """
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        value = {"value": value}
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
        ident = next((v for k, v in value.items() if k.lower() == "value"), None)
        if isinstance(ident, str) and not ident.strip():
            return None
        if isinstance(ident, str) and not any(k.lower() == "$ref" for k in value):
            value["$ref"] = f"Users/{ident}"
    return value


def _normalize_patch(resource_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """Apply the PATCH rules to each operation, in order."""
    for key, operations in body.items():
        if key.lower() == "operations" and isinstance(operations, list):
            rewritten: list[Any] = []
            for operation in operations:
                if isinstance(operation, dict):
                    rewritten.extend(_normalize_operation(resource_type, dict(operation)))
                else:
                    rewritten.append(operation)
            body[key] = rewritten
    return body


def _normalize_operation(resource_type: str, operation: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the operations, RFC 7644 §3.5.2 compliant, that one IdP operation means."""
    name = str(operation.get("op", "")).lower()
    path = operation.get("path")
    if resource_type == "User" and isinstance(path, str):
        path = operation["path"] = _qualify_enterprise_path(path)
    if name == "remove" and isinstance(path, str) and "value" in operation:
        split = _split_remove_by_value(path, operation["value"])
        if split is not None:
            return split
    if resource_type != "User" or "value" not in operation or name not in ("add", "replace"):
        return [operation]
    if isinstance(path, str) and path.lower() == _MANAGER_PATH:
        manager = _normalize_manager(operation["value"])
        if manager is None:
            return [{"op": "remove", "path": path}]
        return [{**operation, "value": manager}]
    if path is None and isinstance(operation["value"], dict):
        return _normalize_pathless_manager(operation)
    return [operation]


def _qualify_enterprise_path(path: str) -> str:
    """Prefix an unqualified enterprise attribute path with the extension URN.

    Entra's tutorial (Example 5, update a user) sends ``"path": "manager"``;
    the library reads an unqualified path in the core schema only.
    """
    if ":" in path:
        return path
    head = path.split(".", 1)[0].split("[", 1)[0]
    return f"{ENTERPRISE_USER}:{path}" if head.lower() in _ENTERPRISE_ATTRIBUTES else path


def _split_remove_by_value(path: str, value: Any) -> list[dict[str, Any]] | None:
    """Rewrite a ``remove`` carrying the values to remove into one filtered remove each.

    Entra without ``aadOptscim062020`` removes a group member with
    ``{"op": "Remove", "path": "members", "value": [{"value": id}]}``; with the
    flag it sends ``members[value eq "id"]``, the form RFC 7644 §3.5.2.2
    defines and this rewrite produces. Only the listed values are removed.
    Returns None when the operation is not of that shape.
    """
    if "[" in path:
        return None
    items = value if isinstance(value, list) else [value]
    idents = [_value_of(item) for item in items]
    if not idents or any(ident is None for ident in idents):
        return None
    return [{"op": "remove", "path": f"{path}[value eq {json.dumps(i)}]"} for i in idents]


def _value_of(item: Any) -> str | None:
    """Return the ``value`` sub-attribute of a multi-valued item, if it is a string."""
    if not isinstance(item, dict):
        return None
    ident = next((v for k, v in item.items() if k.lower() == "value"), None)
    return ident if isinstance(ident, str) else None


def _normalize_pathless_manager(operation: dict[str, Any]) -> list[dict[str, Any]]:
    """Normalize a manager carried in a pathless add/replace value.

    With ``aadOptscim062020``, Entra folds several attributes into one
    pathless replace keyed by URN-qualified paths, the manager among them. An
    empty manager becomes a separate ``remove`` of the manager.
    """
    value = dict(operation["value"])
    removes: list[dict[str, Any]] = []
    for key in list(value):
        lowered = key.lower()
        if lowered == _MANAGER_PATH:
            manager = _normalize_manager(value[key])
            if manager is None:
                del value[key]
                removes.append({"op": "remove", "path": f"{ENTERPRISE_USER}:manager"})
            else:
                value[key] = manager
        elif lowered == ENTERPRISE_USER.lower() and isinstance(value[key], dict):
            had_manager = any(k.lower() == "manager" for k in value[key])
            value[key] = _normalize_extension(value[key])
            if had_manager and not any(k.lower() == "manager" for k in value[key]):
                removes.append({"op": "remove", "path": f"{ENTERPRISE_USER}:manager"})
    kept = [{**operation, "value": value}] if value else []
    return kept + removes
