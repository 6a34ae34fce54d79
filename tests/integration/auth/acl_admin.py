"""Grant and revoke ACLs as the admin (the PLAINTEXT listener's super user), over the
Kafka protocol."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.conn import create_conn
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from streamproc.kafka.acls import Acl

#: The protocol's pattern types and permission.
_LITERAL, _PREFIXED, _ALLOW = 3, 4, 3


def _binding(acl: Acl, principal: str) -> tuple[int, str, int, str, str, int, int]:
    """The ACL binding both requests name: resource, pattern, principal, any host, allow."""
    return (
        int(acl.resource),
        acl.name if acl.name else "kafka-cluster",
        _PREFIXED if acl.prefixed else _LITERAL,
        principal,
        "*",
        int(acl.operation),
        _ALLOW,
    )


async def grant(admin_bootstrap: str, principal: str, acls: Iterable[Acl]) -> None:
    """Create ``Allow`` ACLs for ``principal`` (``User:name``) from any host."""
    host, port = admin_bootstrap.rsplit(":", 1)
    conn = await create_conn(host, int(port), client_id="acl-admin")
    try:
        for acl in acls:
            response = await conn.send(CreateAclsRequest(*_binding(acl, principal)))
            for error_code, message in response.creation_responses:
                assert error_code == 0, f"cannot create {acl}: {error_code} {message}"
    finally:
        conn.close()


async def revoke(admin_bootstrap: str, principal: str, acls: Iterable[Acl]) -> None:
    """Delete the ``Allow`` ACLs :func:`grant` created for ``principal``."""
    host, port = admin_bootstrap.rsplit(":", 1)
    conn = await create_conn(host, int(port), client_id="acl-admin")
    try:
        for acl in acls:
            response = await conn.send(DeleteAclsRequest(*_binding(acl, principal)))
            for error_code, message, matching in response.filter_responses:
                assert error_code == 0 and matching, f"cannot delete {acl}: {error_code} {message}"
    finally:
        conn.close()
