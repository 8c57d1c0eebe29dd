"""Version 2 verified in one pass: this service's RFC 9421 profile, read and rebuilt directly.

The `http-message-signatures` library verifies any RFC 9421 signature: it parses
`Signature-Input` and `Signature` again (the signature check has already parsed them once, to
judge the profile), resolves each component through general resolvers and rebuilds the base;
about 250 us of a version 2 request. The profile is narrow (one label, plain component names
from a fixed list, the parameters created, keyid, alg and nonce), so here its fields are
parsed once, by a regular expression for the canonical form that every signer sends (anything
else goes to http-sf's full parser), and the signature base is built from that parse with the
library's rules for each value. The library still builds every base that clients and tests
sign (`signing.py`), and tests/test_signature_properties.py holds this module to it: the
same base, byte for byte, for every request it accepts, and a refusal wherever it refuses.
"""

import base64
import binascii
import re
from collections.abc import Mapping

type Parameter = tuple[str, int | str]

# One member labelled sig1: an inner list of quoted names, then parameters, in the canonical
# serialization only (single spaces, no other white space, integers without leading zeros), so
# that the text after "sig1=" is its own serialization, the base's "@signature-params".
_NAME = r'"[a-z@][a-z0-9_.@-]*"'
_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'
_INTEGER = r"(?:0|-?[1-9][0-9]{0,14})"
_PARAMETER = rf"(?:;([a-z*][a-z0-9_.*-]*)=({_INTEGER}|{_STRING}))"
SIGNATURE_INPUT = re.compile(rf"sig1=\(((?:{_NAME}(?: {_NAME})*)?)\)({_PARAMETER}*)")
PARAMETER = re.compile(_PARAMETER)
SIGNATURE = re.compile(r"sig1=:([A-Za-z0-9+/]*={0,2}):")
# RFC 3986's characters of a path and of a query, and percent escapes: what the library's URL
# parser accepts in the target it verifies.
_CHARS = r"A-Za-z0-9._~\-!$&'()*+,;="
PATH = re.compile(rf"/(?:[{_CHARS}:@/]|%[0-9A-Fa-f]{{2}})*")
QUERY = re.compile(rf"(?:[{_CHARS}:@/?]|%[0-9A-Fa-f]{{2}})*")


def parse_signature_input(value: str) -> tuple[tuple[str, ...], tuple[Parameter, ...]] | None:
    """The covered names and the parameters, in order; None when the value is not in the
    canonical form (the caller then parses it with http-sf)."""
    found = SIGNATURE_INPUT.fullmatch(value)
    if found is None:
        return None
    names = tuple(name[1:-1] for name in found[1].split(" ")) if found[1] else ()
    parameters: list[Parameter] = []
    for name, raw in PARAMETER.findall(found[2]):
        if raw.startswith('"'):
            parameters.append((name, raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")))
        else:
            parameters.append((name, int(raw)))
    if len({name for name, _ in parameters}) != len(parameters):
        return None  # a repeated parameter: http-sf keeps the last, as it says
    return names, tuple(parameters)


def parse_signature(value: str) -> bytes | None:
    """The byte sequence of `sig1`, or None when not in the canonical form."""
    found = SIGNATURE.fullmatch(value)
    if found is None:
        return None
    try:
        return base64.b64decode(found[1], validate=True)
    except binascii.Error:
        return None


def serialize(names: tuple[str, ...], parameters: tuple[Parameter, ...]) -> str:
    """The `@signature-params` value: the member as RFC 8941 serializes it."""
    items = " ".join(f'"{name}"' for name in names)
    rendered = "".join(
        f";{name}={value}"
        if isinstance(value, int)
        else ";" + name + '="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for name, value in parameters
    )
    return f"({items}){rendered}"


def _field(value: str) -> str | None:
    """A field's value as RFC 9421 signs it, or None where the library refuses it."""
    value = value.strip(" \t")
    if "\r" in value or "\n" in value or not value.replace("\t", " ").isprintable():
        return None
    return value


def signature_base(
    method: str,
    path: str,
    query: str,
    fields: Mapping[str, str],
    names: tuple[str, ...],
    serialized: str,
) -> bytes | None:
    """The bytes the HMAC covers, or None where the library would refuse the request (a value
    it cannot sign, a target its URL parser refuses, anything not ASCII)."""
    if not PATH.fullmatch(path) or not QUERY.fullmatch(query) or method != method.upper():
        return None
    lines: list[str] = []
    for name in names:
        if name == "@method":
            value: str | None = method
        elif name == "@path":
            value = path
        elif name == "@query":
            value = "?" + query
        elif name in fields:
            value = _field(fields[name])
        else:
            return None
        if value is None:
            return None
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {serialized}')
    base = "\n".join(lines)
    return base.encode() if base.isascii() else None
