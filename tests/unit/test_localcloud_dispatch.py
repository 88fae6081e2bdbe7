"""The local cloud keeps moto's answer to "which service is this host?" (localcloud.awscalls):
the same backend as moto finds, looked up once per host instead of on every request."""

from __future__ import annotations

from typing import Any

from localcloud.awscalls import remember_backends_by_host


def test_each_host_is_looked_up_once_and_answered_as_moto_answers() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    plain = DomainDispatcherApplication(create_backend_app)
    remembered = DomainDispatcherApplication(create_backend_app)
    lookups: list[str | None] = []
    original = remembered.get_backend_for_host

    def counted(host: str | None) -> Any:
        lookups.append(host)
        return original(host)

    remembered.get_backend_for_host = counted  # type: ignore[method-assign]
    remember_backends_by_host(remembered)
    hosts = ["dynamodb.us-east-1.amazonaws.com", "s3.amazonaws.com", "kms.us-east-1.amazonaws.com", None]
    for _ in range(3):
        for host in hosts:
            assert remembered.get_backend_for_host(host) == plain.get_backend_for_host(host)
    assert sorted(map(str, lookups)) == sorted(map(str, hosts))  # once each
    assert plain.get_backend_for_host("dynamodb.us-east-1.amazonaws.com") == "dynamodb"
