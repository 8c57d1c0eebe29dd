"""Signs each Schemathesis case over the exact bytes it will send, with a fresh timestamp.

The signature is computed from the request that `requests` prepares from the case (the
serialized body and the request target), so it covers what goes on the wire. It is applied as
a Schemathesis auth provider, never at the transport: Schemathesis then leaves the signature
off the cases that test missing or wrong credentials, instead of having it re-added later.
"""

from typing import Any

import requests
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from schemathesis import Case
from schemathesis.schemas import APIOperation

import signing

# Version 2 binds the path, the query and the headers that change what a request does; with
# version 1, two empty-bodied DELETEs of different resources signed in the same millisecond
# would share a signature, and replay protection would (rightly) refuse the second one.
SIGNATURE_HEADERS = (*signing.V1_HEADERS, *signing.V2_HEADERS)

type AnyCase = Case[APIOperation[Any, Any, Any, Any]]


def wire_request(case: AnyCase, base_url: str) -> requests.PreparedRequest:
    """The request as `requests` will send it: body bytes and target included."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=base_url)
    fields = ("method", "url", "headers", "params", "cookies", "json", "data", "files")
    return requests.Request(**{name: kwargs[name] for name in fields if name in kwargs}).prepare()


def signed_headers(case: AnyCase, key: str, base_url: str, timestamp: int) -> dict[str, str]:
    prepared = wire_request(case, base_url)
    body = prepared.body or b""
    assert isinstance(body, bytes | str), "Schemathesis sends whole bodies, never streams"
    assert prepared.method is not None
    headers = {name: value for name, value in prepared.headers.items() if isinstance(value, str)}
    try:
        return signing.signed_headers(
            prepared.method, prepared.path_url, body, key, 2, timestamp, headers=headers
        )
    except HTTPMessageSignaturesException:
        # RFC 9421 signs ASCII field values only: a generated non-ASCII If-Match is signed
        # with version 1, which binds no header.
        return signing.signed_headers(prepared.method, prepared.path_url, body, key, 1, timestamp)


class Signer:
    """Remembers what it signed, so that a case can be re-signed only if still carrying it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.base_url = "http://127.0.0.1"
        self._signed: dict[str, str] = {}

    def sign(self, case: AnyCase) -> None:
        for name in list(case.headers):
            if name.lower() in SIGNATURE_HEADERS:
                case.headers.pop(name)
        headers = signed_headers(case, self.key, self.base_url, signing.now_ms())
        case.headers.update(headers)
        self._signed[case.id] = headers.get("Signature") or headers["x-signature"]

    def resign(self, case: AnyCase) -> None:
        """Sign again just before sending, if the signature is still the one this signer set.

        Stateful steps fill in link values after generation, and a signature that Schemathesis
        replaced or removed on purpose (to test that it is required) must stay as it is.
        """
        signed = self._signed.get(case.id)
        carried = case.headers.get("Signature") or case.headers.get("x-signature")
        if signed is not None and carried == signed:
            self.sign(case)
