"""Every change between two OpenAPI 3.0 documents, each with whom it breaks.

A change is judged by what a caller written against the base may now meet. In a request, the
base's accepted values must still be accepted; in a response, the head must return nothing the
base ruled out. Generated clients are judged apart: they also break when a name they are built
from changes (an operationId, a component schema, a path parameter, a tag) even though the bytes
on the wire are the same.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Literal

type Schema = Mapping[str, Any]
type Direction = Literal["request", "response"]

SEP = " > "
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keywords that only document: a change to them is listed, once, where it is written.
DOCUMENTATION = frozenset(
    {"summary", "description", "title", "example", "examples", "externalDocs", "xml"}
)
# Bounds whose order is known, and whether a larger value lets more values through.
BOUNDS = {
    "maximum": True,
    "maxLength": True,
    "maxItems": True,
    "maxProperties": True,
    "minimum": False,
    "minLength": False,
    "minItems": False,
    "minProperties": False,
}
# Constraints with no order: present (or true) lets fewer values through than absent.
CONSTRAINTS = ("pattern", "multipleOf", "uniqueItems", "exclusiveMinimum", "exclusiveMaximum")
SCHEMA_KEYWORDS_COMPARED = frozenset(
    {
        *BOUNDS,
        *CONSTRAINTS,
        "$ref",
        "allOf",
        "type",
        "nullable",
        "enum",
        "format",
        "default",
        "deprecated",
        "readOnly",
        "writeOnly",
        "properties",
        "required",
        "additionalProperties",
        "items",
    }
)
OPERATION_KEYWORDS_COMPARED = frozenset(
    {"operationId", "tags", "deprecated", "security", "parameters", "requestBody", "responses"}
)
PARAMETER_KEYWORDS_COMPARED = frozenset(
    {
        "name",
        "in",
        "required",
        "deprecated",
        "style",
        "explode",
        "allowReserved",
        "allowEmptyValue",
        "schema",
        "content",
    }
)
# Attributes that make a security scheme what it is on the wire (its name is only a label).
SCHEME_IDENTITY = ("type", "in", "name", "scheme", "bearerFormat", "flows", "openIdConnectUrl")


class Kind(Enum):
    WIRE = "breaks callers on the wire"
    CLIENTS = "breaks generated clients"
    COMPATIBLE = "compatible"

    @property
    def breaking(self) -> bool:
        return self is not Kind.COMPATIBLE

    @property
    def tag(self) -> str:
        return "ok" if self is Kind.COMPATIBLE else self.name

    @property
    def rank(self) -> int:
        return list(Kind).index(self)


@dataclass(frozen=True)
class Change:
    where: str
    what: str
    kind: Kind
    # The operation it belongs to, as `operationId · METHOD /path`; empty for the contract as a
    # whole and its components.
    operation: str = ""

    @property
    def breaking(self) -> bool:
        return self.kind.breaking

    @property
    def line(self) -> str:
        """The change in one line: what a changelog names to approve it."""
        return f"{self.where}: {self.what}"

    def __str__(self) -> str:
        return f"{self.kind.tag:<8} {self.line}"


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def _documents(key: str) -> bool:
    return key in DOCUMENTATION or key.startswith("x-")


class Resolver:
    """Follows local `$ref`s, and merges `allOf` into one schema (enough for this spec)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def __call__(self, node: Any) -> Any:
        seen: set[str] = set()
        while isinstance(node, Mapping) and "$ref" in node:
            ref: str = node["$ref"]  # type: ignore[assignment]
            if ref in seen or not ref.startswith("#/"):
                raise ValueError(f"cannot follow $ref {ref}")
            seen.add(ref)
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        if isinstance(node, Mapping) and "allOf" in node:
            merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:  # type: ignore[union-attr]
                resolved = self(part)
                merged = {**resolved, **merged}
            return merged
        return node


def _schema_name(node: Any) -> str | None:
    """The component a schema names by `$ref` (what a generator calls its type), if any."""
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref: str = node["$ref"]
        if ref.startswith("#/components/schemas/"):
            return ref.rsplit("/", 1)[1]
    return None


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    types: set[str] = {declared} if isinstance(declared, str) else set(declared or ("any",))
    if schema.get("nullable") or None in schema.get("enum", ()):
        types.add("null")
    return types


def _covers(wide: set[str], narrow: set[str]) -> bool:
    """Whether every value of the `narrow` types is also one of the `wide` types."""
    return "any" in wide or all(
        kind in wide or (kind == "integer" and "number" in wide) for kind in narrow
    )


def _status_is_an_error(status: str) -> bool:
    return status == "default" or status[0] in "45"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Schema
    placeholders: tuple[str, ...]
    # By location and name (header names folded; path parameters by position, as clients
    # fill the URL by position and a renamed one changes nothing on the wire).
    parameters: dict[tuple[str, str], Schema]
    inherits_security: bool

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def group(self) -> str:
        operation_id = self.spec.get("operationId")
        return f"{operation_id} · {self.label}" if operation_id else self.label


def _operations(document: Mapping[str, Any], resolve: Resolver) -> dict[tuple[str, str], Operation]:
    operations: dict[tuple[str, str], Operation] = {}
    for path, item in (document.get("paths") or {}).items():
        placeholders = tuple(part[1:-1] for part in path.split("/") if part.startswith("{"))
        shape = "/".join("{}" if part.startswith("{") else part for part in path.split("/"))
        for method in METHODS:
            if method not in item:
                continue
            parameters: dict[tuple[str, str], Schema] = {}
            for reference in [*item.get("parameters", []), *item[method].get("parameters", [])]:
                parameter = resolve(reference)
                name: str = parameter["name"]
                location: str = parameter["in"]
                if location == "path" and name in placeholders:
                    name = str(placeholders.index(name))
                elif location == "header":
                    name = name.lower()
                parameters[(location, name)] = parameter
            operations[(shape, method)] = Operation(
                method,
                path,
                item[method],
                placeholders,
                parameters,
                inherits_security="security" not in item[method],
            )
    return operations


class Differ:
    def __init__(self, base: Mapping[str, Any], head: Mapping[str, Any]) -> None:
        self.base_doc, self.head_doc = base, head
        self.base, self.head = Resolver(base), Resolver(head)
        self.base_ops = _operations(base, self.base)
        self.head_ops = _operations(head, self.head)
        self.renamed_schemas = dict(_renamed(_section(base, "schemas"), _section(head, "schemas")))
        # A scheme renamed, and nothing else, asks the same of callers (its name is a label).
        self.scheme_names_before = {
            new: old
            for old, new in _renamed(
                _section(base, "securitySchemes"), _section(head, "securitySchemes")
            )
        }

    def changes(self) -> list[Change]:
        found = [*self._document(), *self._components()]
        for key in sorted(self.base_ops.keys() - self.head_ops.keys()):
            gone = self.base_ops[key]
            found.append(Change(gone.label, "operation removed", Kind.WIRE, gone.group))
        for key in sorted(self.head_ops.keys() - self.base_ops.keys()):
            new = self.head_ops[key]
            found.append(Change(new.label, "operation added", Kind.COMPATIBLE, new.group))
        for key in sorted(self.base_ops.keys() & self.head_ops.keys()):
            found += self._operation(self.base_ops[key], self.head_ops[key])
        found += _Documentation(self.head_ops).changes(self.base_doc, self.head_doc)
        return found

    # The contract as a whole -----------------------------------------------------------------

    def _document(self) -> Iterator[Change]:
        base, head = self.base_doc, self.head_doc
        if base.get("openapi") != head.get("openapi"):
            yield Change(
                "openapi",
                f"{_show(base.get('openapi'))} -> {_show(head.get('openapi'))}",
                Kind.COMPATIBLE,
            )
        base_info, head_info = base.get("info", {}), head.get("info", {})
        for key in sorted((base_info.keys() | head_info.keys()) - DOCUMENTATION):
            if base_info.get(key) != head_info.get(key):
                yield Change(
                    "info",
                    f"{key} {_show(base_info.get(key))} -> {_show(head_info.get(key))}",
                    Kind.COMPATIBLE,
                )
        yield from self._servers(base.get("servers", []), head.get("servers", []))
        base_tags = [tag["name"] for tag in base.get("tags", [])]
        head_tags = [tag["name"] for tag in head.get("tags", [])]
        for name in base_tags:
            if name not in head_tags:
                yield Change(f"tag {name}", "removed", Kind.COMPATIBLE)
        for name in head_tags:
            if name not in base_tags:
                yield Change(f"tag {name}", "added", Kind.COMPATIBLE)
        yield from self._security("security", base.get("security", []), head.get("security", []))
        handled = {"openapi", "info", "servers", "tags", "security", "paths", "components"}
        for key in sorted((base.keys() | head.keys()) - handled):
            if not _documents(key) and base.get(key) != head.get(key):
                yield Change(key, "changed; not compared by this tool, review it", Kind.WIRE)

    @staticmethod
    def _servers(base: list[Schema], head: list[Schema]) -> Iterator[Change]:
        base_urls = [server.get("url") for server in base]
        head_urls = [server.get("url") for server in head]
        if base_urls[:1] != head_urls[:1]:
            # Generators take the first entry as the client's default base URL.
            before, after = _show(next(iter(base_urls), None)), _show(next(iter(head_urls), None))
            yield Change("servers", f"first url {before} -> {after}", Kind.CLIENTS)
        for url in base_urls[1:]:
            if url not in head_urls:
                yield Change("servers", f"url {_show(url)} removed", Kind.COMPATIBLE)
        for url in head_urls[1:]:
            if url not in base_urls:
                yield Change("servers", f"url {_show(url)} added", Kind.COMPATIBLE)
        before = {server.get("url"): server for server in base}
        for server in head:
            if server.get("url") in before:
                where = f"servers{SEP}{server.get('url')}"
                yield from _unexamined(where, before[server.get("url")], server, {"url"})

    def _security(
        self,
        where: str,
        base: list[Mapping[str, list[str]]],
        head: list[Mapping[str, list[str]]],
        group: str = "",
    ) -> Iterator[Change]:
        """`security` lists alternatives; a caller meets one of them with every scheme it names."""
        base_alternatives = _alternatives(base, {})
        head_alternatives = _alternatives(head, self.scheme_names_before)
        for alternative, label in base_alternatives.items():
            if alternative in head_alternatives:
                continue
            still_met = any(_requires_less(other, alternative) for other in head_alternatives)
            kind = Kind.COMPATIBLE if still_met else Kind.WIRE
            yield Change(where, f"{label} no longer accepted", kind, group)
        for alternative, label in head_alternatives.items():
            if alternative not in base_alternatives:
                yield Change(where, f"{label} now accepted", Kind.COMPATIBLE, group)

    # Components --------------------------------------------------------------------------------

    def _components(self) -> Iterator[Change]:
        base, head = self.base_doc.get("components", {}), self.head_doc.get("components", {})
        for section in sorted(base.keys() | head.keys()):
            base_items, head_items = base.get(section, {}), head.get(section, {})
            renamed = dict(_renamed(base_items, head_items))
            # Generators name a type after each schema, and key their credentials by scheme name.
            kind = Kind.CLIENTS if section in {"schemas", "securitySchemes"} else Kind.COMPATIBLE
            for name in sorted(base_items.keys() - head_items.keys()):
                where = f"components{SEP}{section}{SEP}{name}"
                what = f"renamed to {renamed[name]}" if name in renamed else "removed"
                yield Change(where, what, kind)
            for name in sorted(head_items.keys() - base_items.keys() - set(renamed.values())):
                yield Change(f"components{SEP}{section}{SEP}{name}", "added", Kind.COMPATIBLE)
        base_schemes = _section(self.base_doc, "securitySchemes")
        head_schemes = _section(self.head_doc, "securitySchemes")
        for name in sorted(base_schemes.keys() & head_schemes.keys()):
            before, after = base_schemes[name], head_schemes[name]
            for key in SCHEME_IDENTITY:
                if before.get(key) != after.get(key):
                    yield Change(
                        f"components{SEP}securitySchemes{SEP}{name}",
                        f"{key} {_show(before.get(key))} -> {_show(after.get(key))}",
                        Kind.WIRE,
                    )

    # Operations --------------------------------------------------------------------------------

    def _operation(self, base: Operation, head: Operation) -> Iterator[Change]:
        label, group = head.label, head.group
        before_id, after_id = base.spec.get("operationId"), head.spec.get("operationId")
        if before_id != after_id:
            what = f"operationId {before_id or 'none'} -> {after_id or 'none'}"
            yield Change(label, what, Kind.CLIENTS, group)
        for before, after in zip(base.placeholders, head.placeholders, strict=True):
            if before != after:
                # Generated clients take path parameters as named arguments.
                what = f"path parameter {before} renamed to {after}"
                yield Change(label, what, Kind.CLIENTS, group)
        base_tags, head_tags = base.spec.get("tags", []), head.spec.get("tags", [])
        if base_tags != head_tags:
            # Generators put an operation's method in one class per tag (`HeroesApi`).
            dropped = any(tag not in head_tags for tag in base_tags)
            kind = Kind.CLIENTS if dropped else Kind.COMPATIBLE
            yield Change(label, f"tags {_show(base_tags)} -> {_show(head_tags)}", kind, group)
        if bool(base.spec.get("deprecated")) != bool(head.spec.get("deprecated")):
            what = "now deprecated" if head.spec.get("deprecated") else "no longer deprecated"
            yield Change(label, what, Kind.COMPATIBLE, group)
        if not (base.inherits_security and head.inherits_security):
            yield from self._security(
                f"{label}{SEP}security",
                base.spec.get("security", self.base_doc.get("security", [])),
                head.spec.get("security", self.head_doc.get("security", [])),
                group,
            )
        for found in (
            *self._parameters(label, base.parameters, head.parameters),
            *self._request_body(label, base.spec, head.spec),
            *self._responses(label, base.spec, head.spec),
            *_unexamined(label, base.spec, head.spec, OPERATION_KEYWORDS_COMPARED),
        ):
            yield replace(found, operation=group)

    def _parameters(
        self,
        label: str,
        base: dict[tuple[str, str], Schema],
        head: dict[tuple[str, str], Schema],
    ) -> Iterator[Change]:
        for key, before in base.items():
            if key not in head:
                yield Change(
                    f"{label}{SEP}{key[0]} parameter {before['name']}", "removed", Kind.WIRE
                )
                continue
            after = head[key]
            where = f"{label}{SEP}{key[0]} parameter {after['name']}"
            if after.get("required") and not before.get("required"):
                yield Change(where, "now required", Kind.WIRE)
            elif before.get("required") and not after.get("required"):
                yield Change(where, "no longer required", Kind.COMPATIBLE)
            if bool(before.get("deprecated")) != bool(after.get("deprecated")):
                what = "now deprecated" if after.get("deprecated") else "no longer deprecated"
                yield Change(where, what, Kind.COMPATIBLE)
            if key[0] == "header" and before["name"] != after["name"]:
                what = f"name {before['name']} -> {after['name']} (header names ignore case)"
                yield Change(where, what, Kind.COMPATIBLE)
            for key_word in ("style", "explode", "allowReserved"):
                if before.get(key_word) != after.get(key_word):
                    what = (
                        f"{key_word} {_show(before.get(key_word))} -> {_show(after.get(key_word))}"
                    )
                    yield Change(where, what, Kind.WIRE)
            if bool(before.get("allowEmptyValue")) != bool(after.get("allowEmptyValue")):
                refused = not after.get("allowEmptyValue")
                what = "empty value now refused" if refused else "empty value now accepted"
                yield Change(where, what, Kind.WIRE if refused else Kind.COMPATIBLE)
            yield from self._schema(
                where, _parameter_schema(before), _parameter_schema(after), "request"
            )
            yield from _unexamined(where, before, after, PARAMETER_KEYWORDS_COMPARED)
        for key, after in head.items():
            if key not in base:
                where = f"{label}{SEP}{key[0]} parameter {after['name']}"
                if after.get("required"):
                    yield Change(where, "added, required", Kind.WIRE)
                else:
                    yield Change(where, "added", Kind.COMPATIBLE)

    def _request_body(self, label: str, base_op: Schema, head_op: Schema) -> Iterator[Change]:
        where = f"{label}{SEP}request body"
        if "requestBody" not in base_op and "requestBody" not in head_op:
            return
        if "requestBody" not in head_op:
            yield Change(where, "removed", Kind.WIRE)
            return
        base, head = self.base(base_op.get("requestBody", {})), self.head(head_op["requestBody"])
        if "requestBody" not in base_op:
            required = bool(head.get("required"))
            kind = Kind.WIRE if required else Kind.COMPATIBLE
            yield Change(where, "added, required" if required else "added", kind)
            return
        if head.get("required") and not base.get("required"):
            yield Change(where, "now required", Kind.WIRE)
        elif base.get("required") and not head.get("required"):
            yield Change(where, "no longer required", Kind.COMPATIBLE)
        base_content, head_content = base.get("content", {}), head.get("content", {})
        for media_type, content in base_content.items():
            if media_type not in head_content:
                yield Change(where, f"{media_type} no longer accepted", Kind.WIRE)
                continue
            yield from self._schema(
                f"{where}{SEP}{media_type}",
                content.get("schema", {}),
                head_content[media_type].get("schema", {}),
                "request",
            )
            yield from _unexamined(
                f"{where}{SEP}{media_type}", content, head_content[media_type], {"schema"}
            )
        for media_type in head_content:
            if media_type not in base_content:
                yield Change(where, f"{media_type} now accepted", Kind.COMPATIBLE)

    def _responses(self, label: str, base_op: Schema, head_op: Schema) -> Iterator[Change]:
        base_responses, head_responses = base_op.get("responses", {}), head_op.get("responses", {})
        for status, base_response in base_responses.items():
            where = f"{label}{SEP}response {status}"
            if status not in head_responses:
                # Callers lose a success; typed clients lose the type they handled an error with.
                kind = Kind.CLIENTS if _status_is_an_error(str(status)) else Kind.WIRE
                yield Change(where, "removed", kind)
                continue
            base_r, head_r = self.base(base_response), self.head(head_responses[status])
            yield from self._response_headers(where, base_r, head_r)
            base_content, head_content = base_r.get("content", {}), head_r.get("content", {})
            for media_type, content in base_content.items():
                if media_type not in head_content:
                    yield Change(where, f"{media_type} body removed", Kind.WIRE)
                    continue
                yield from self._schema(
                    f"{where}{SEP}{media_type}",
                    content.get("schema", {}),
                    head_content[media_type].get("schema", {}),
                    "response",
                )
                yield from _unexamined(
                    f"{where}{SEP}{media_type}", content, head_content[media_type], {"schema"}
                )
            for media_type in head_content:
                if media_type not in base_content:
                    yield Change(where, f"{media_type} body added", Kind.COMPATIBLE)
            yield from self._links(where, base_r.get("links", {}), head_r.get("links", {}))
            yield from _unexamined(where, base_r, head_r, {"headers", "content", "links"})
        for status in head_responses:
            if status not in base_responses:
                # An old caller has no code for a success or redirect it was never told of.
                error = _status_is_an_error(str(status))
                yield Change(
                    f"{label}{SEP}response {status}",
                    "added",
                    Kind.COMPATIBLE if error else Kind.WIRE,
                )

    def _response_headers(self, where: str, base: Schema, head: Schema) -> Iterator[Change]:
        base_headers = {name.lower(): (name, h) for name, h in base.get("headers", {}).items()}
        head_headers = {name.lower(): (name, h) for name, h in head.get("headers", {}).items()}
        for folded, (name, header) in base_headers.items():
            if folded not in head_headers:
                yield Change(f"{where}{SEP}header {name}", "removed", Kind.WIRE)
                continue
            before, after = self.base(header), self.head(head_headers[folded][1])
            header_where = f"{where}{SEP}header {head_headers[folded][0]}"
            if before.get("required") and not after.get("required"):
                yield Change(header_where, "no longer always sent", Kind.WIRE)
            elif after.get("required") and not before.get("required"):
                yield Change(header_where, "now always sent", Kind.COMPATIBLE)
            yield from self._schema(
                header_where, before.get("schema", {}), after.get("schema", {}), "response"
            )
            yield from _unexamined(header_where, before, after, {"required", "schema"})
        for folded, (name, _) in head_headers.items():
            if folded not in base_headers:
                yield Change(f"{where}{SEP}header {name}", "added", Kind.COMPATIBLE)

    def _links(self, where: str, base: Schema, head: Schema) -> Iterator[Change]:
        """Links are compared by the operation they lead to, whatever its operationId now is."""
        for name in sorted(base.keys() | head.keys()):
            before = self._link_target(self.base_doc, self.base_ops, base.get(name))
            after = self._link_target(self.head_doc, self.head_ops, head.get(name))
            if before != after:
                state = "removed" if after is None else "added" if before is None else "changed"
                yield Change(f"{where}{SEP}link {name}", state, Kind.COMPATIBLE)

    @staticmethod
    def _link_target(
        document: Mapping[str, Any], operations: dict[tuple[str, str], Operation], link: Any
    ) -> Any:
        if link is None:
            return None
        link = Resolver(document)(link)
        keys = {op.spec.get("operationId"): key for key, op in operations.items()}
        return {**link, "operationId": keys.get(link.get("operationId"), link.get("operationId"))}

    # Schemas -----------------------------------------------------------------------------------

    def _schema(
        self,
        where: str,
        base_node: Any,
        head_node: Any,
        direction: Direction,
        seen: frozenset[tuple[str | None, str | None]] = frozenset(),
    ) -> Iterator[Change]:
        base_name, head_name = _schema_name(base_node), _schema_name(head_node)
        if base_name is not None and (base_name, head_name) in seen:
            return  # a recursive schema, already compared on the way here
        seen = seen | {(base_name, head_name)}
        base, head = self.base(base_node), self.head(head_node)
        if (
            base_name != head_name
            and self.renamed_schemas.get(base_name or "") != head_name
            and _named_by_generators(base)
            and _named_by_generators(head)
        ):
            what = f"type name {base_name or 'inline'} -> {head_name or 'inline'}"
            yield Change(where, what, Kind.CLIENTS)
        yield from self._type(where, base, head, direction)
        yield from _enum(where, base, head, direction)
        yield from _bounds(where, base, head, direction)
        yield from _format_and_default(where, base, head, direction)
        yield from self._properties(where, base, head, direction, seen)
        if "items" in base and "items" in head:
            yield from self._schema(f"{where}[]", base["items"], head["items"], direction, seen)
        yield from _unexamined(where, base, head, SCHEMA_KEYWORDS_COMPARED)

    @staticmethod
    def _type(where: str, base: Schema, head: Schema, direction: Direction) -> Iterator[Change]:
        base_types, head_types = _types(base), _types(head)
        if base_types == head_types:
            return
        wider = head_types if direction == "request" else base_types
        narrower = base_types if direction == "request" else head_types
        what = f"type {'|'.join(sorted(base_types))} -> {'|'.join(sorted(head_types))}"
        yield Change(where, what, Kind.COMPATIBLE if _covers(wider, narrower) else Kind.WIRE)

    def _properties(
        self,
        where: str,
        base: Schema,
        head: Schema,
        direction: Direction,
        seen: frozenset[tuple[str | None, str | None]],
    ) -> Iterator[Change]:
        base_props, head_props = base.get("properties", {}), head.get("properties", {})
        base_required, head_required = set(base.get("required", [])), set(head.get("required", []))
        hidden = "readOnly" if direction == "request" else "writeOnly"
        base_seen = {n for n, s in base_props.items() if not self.base(s).get(hidden)}
        head_seen = {n for n, s in head_props.items() if not self.head(s).get(hidden)}
        for name in base_props:
            if name not in base_seen:
                continue
            field = f"{where}{SEP}{name}"
            if name not in head_seen:
                what = f"now {hidden}" if name in head_props else "removed"
                # A request property gone is refused, or silently dropped: either way the
                # caller's value no longer does what it did.
                yield Change(field, what, Kind.WIRE)
                continue
            if direction == "request" and name in head_required - base_required:
                yield Change(field, "now required", Kind.WIRE)
            elif direction == "request" and name in base_required - head_required:
                yield Change(field, "no longer required", Kind.COMPATIBLE)
            elif direction == "response" and name in base_required - head_required:
                yield Change(field, "no longer always present", Kind.WIRE)
            elif direction == "response" and name in head_required - base_required:
                yield Change(field, "now always present", Kind.COMPATIBLE)
            yield from self._schema(field, base_props[name], head_props[name], direction, seen)
        closed = base.get("additionalProperties") is False
        for name in head_props:
            if name not in head_seen or name in base_seen:
                continue
            field = f"{where}{SEP}{name}"
            if direction == "request":
                required = name in head_required
                what = "added, required" if required else "added"
                yield Change(field, what, Kind.WIRE if required else Kind.COMPATIBLE)
            elif closed:
                # The base said no other property: openapi-generator's models refuse it.
                yield Change(field, "added where no other property was allowed", Kind.CLIENTS)
            else:
                yield Change(field, "added", Kind.COMPATIBLE)
        yield from self._additional_properties(where, base, head, direction, seen)

    def _additional_properties(
        self,
        where: str,
        base: Schema,
        head: Schema,
        direction: Direction,
        seen: frozenset[tuple[str | None, str | None]],
    ) -> Iterator[Change]:
        before, after = base.get("additionalProperties"), head.get("additionalProperties")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            yield from self._schema(f"{where}{SEP}*", before, after, direction, seen)
            return
        if (before is False) == (after is False) or "object" not in _types(head):
            return
        if direction == "request":
            closing = after is False
            what = "other properties now refused" if closing else "other properties now accepted"
            yield Change(where, what, Kind.WIRE if closing else Kind.COMPATIBLE)
        else:
            opening = before is False
            what = "other properties now allowed" if opening else "no other property allowed"
            yield Change(where, what, Kind.CLIENTS if opening else Kind.COMPATIBLE)


def _parameter_schema(parameter: Schema) -> Any:
    if "schema" in parameter:
        return parameter["schema"]
    return next(iter(parameter.get("content", {}).values()), {}).get("schema", {})


def _named_by_generators(schema: Schema) -> bool:
    """Objects and enumerations become named types in generated code; plain values do not."""
    return "object" in _types(schema) or "properties" in schema or "enum" in schema


def _section(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return (document.get("components") or {}).get(name) or {}


def _renamed(base: Mapping[str, Any], head: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Pairs (old name, new name) of components that vanished and reappeared unchanged."""
    appeared = {name: value for name, value in head.items() if name not in base}
    for name, value in base.items():
        if name in head:
            continue
        for new_name, new_value in appeared.items():
            if new_value == value:
                yield name, new_name
                del appeared[new_name]
                break


type Alternative = frozenset[tuple[str, frozenset[str]]]


def _alternatives(
    requirements: list[Mapping[str, list[str]]], names: Mapping[str, str]
) -> dict[Alternative, str]:
    """Each alternative by the schemes (under their base names) and scopes it asks for."""
    alternatives: dict[Alternative, str] = {}
    for requirement in requirements or [{}]:
        canonical = frozenset(
            (names.get(name, name), frozenset(scopes)) for name, scopes in requirement.items()
        )
        alternatives[canonical] = " + ".join(sorted(requirement)) or "no authentication"
    return alternatives


def _requires_less(smaller: Alternative, larger: Alternative) -> bool:
    """Whether a caller who meets `larger` meets `smaller` too."""
    held = dict(larger)
    return all(scheme in held and scopes <= held[scheme] for scheme, scopes in smaller)


def _enum(where: str, base: Schema, head: Schema, direction: Direction) -> Iterator[Change]:
    before, after = base.get("enum"), head.get("enum")
    if before == after:
        return
    if (
        before is not None
        and after is not None
        and set(map(_show, before)) == set(map(_show, after))
    ):
        yield Change(where, "enum reordered", Kind.COMPATIBLE)
        return
    if direction == "request":
        if after is None:
            yield Change(where, "enum removed: any value accepted", Kind.COMPATIBLE)
        elif before is None:
            yield Change(where, f"enum {_show(after)} added: other values refused", Kind.WIRE)
        else:
            refused = [value for value in before if value not in after]
            accepted = [value for value in after if value not in before]
            if refused:
                yield Change(where, f"enum: {_show(refused)} now refused", Kind.WIRE)
            if accepted:
                yield Change(where, f"enum: {_show(accepted)} now accepted", Kind.COMPATIBLE)
    elif after is None:
        yield Change(where, "enum removed: may now return any value", Kind.WIRE)
    elif before is None:
        yield Change(where, f"enum {_show(after)} added", Kind.COMPATIBLE)
    else:
        new = [value for value in after if value not in before]
        gone = [value for value in before if value not in after]
        if new:
            yield Change(where, f"enum: may now return {_show(new)}", Kind.WIRE)
        if gone:
            yield Change(where, f"enum: {_show(gone)} no longer returned", Kind.COMPATIBLE)


def _bounds(where: str, base: Schema, head: Schema, direction: Direction) -> Iterator[Change]:
    """A request must still take what it took; a response must return nothing new."""
    for keyword, larger_is_wider in BOUNDS.items():
        before, after = base.get(keyword), head.get(keyword)
        if before == after:
            continue
        if before is None or after is None:
            wider = before is not None
        else:
            wider = (after > before) == larger_is_wider
        yield _constraint(where, keyword, before, after, direction, wider=wider)
    for keyword in CONSTRAINTS:
        before, after = base.get(keyword), head.get(keyword)
        if before == after:
            continue
        if not after or not before:
            yield _constraint(where, keyword, before, after, direction, wider=not after)
        else:  # a different pattern or step: some old values fail, some new ones pass
            yield Change(where, f"{keyword} {_show(before)} -> {_show(after)}", Kind.WIRE)


def _constraint(
    where: str, keyword: str, before: Any, after: Any, direction: Direction, *, wider: bool
) -> Change:
    breaks = wider if direction == "response" else not wider
    what = f"{keyword} {_show(before)} -> {_show(after)}"
    return Change(where, what, Kind.WIRE if breaks else Kind.COMPATIBLE)


def _format_and_default(
    where: str, base: Schema, head: Schema, direction: Direction
) -> Iterator[Change]:
    before, after = base.get("format"), head.get("format")
    if before != after:
        # A format is also a generated type (`datetime`, not `str`): clients break at least; a
        # request format added or changed refuses values, a response one lets new values out.
        stricter = after if direction == "request" else before
        kind = Kind.WIRE if stricter is not None else Kind.CLIENTS
        yield Change(where, f"format {_show(before)} -> {_show(after)}", kind)
    before, after = base.get("default"), head.get("default")
    if before != after:
        # Who leaves the value out now gets another one, or whatever the server picks.
        kind = Kind.COMPATIBLE if before is None else Kind.WIRE
        yield Change(where, f"default {_show(before)} -> {_show(after)}", kind)
    if bool(base.get("deprecated")) != bool(head.get("deprecated")):
        what = "now deprecated" if head.get("deprecated") else "no longer deprecated"
        yield Change(where, what, Kind.COMPATIBLE)


def _unexamined(
    where: str, base: Schema, head: Schema, compared: frozenset[str] | set[str]
) -> Iterator[Change]:
    """Whatever else differs is listed too: this tool does not judge it, so a person must."""
    for key in sorted(base.keys() | head.keys()):
        if key in compared or _documents(key) or base.get(key) == head.get(key):
            continue
        yield Change(where, f"{key} changed; not compared by this tool, review it", Kind.WIRE)


class _Documentation:
    """Changes to what only documents (descriptions, examples), listed once where written."""

    def __init__(self, operations: dict[tuple[str, str], Operation]) -> None:
        self.groups = {(op.path, op.method): op.group for op in operations.values()}

    def changes(self, base: Mapping[str, Any], head: Mapping[str, Any]) -> list[Change]:
        found = [*self._keywords("info", base.get("info", {}), head.get("info", {}))]
        base_tags = {tag["name"]: tag for tag in base.get("tags", [])}
        for tag in head.get("tags", []):
            if tag["name"] in base_tags:
                found += self._keywords(f"tag {tag['name']}", base_tags[tag["name"]], tag)
        found += self._keywords("document", base, head)
        base_servers = {server.get("url"): server for server in base.get("servers", [])}
        for server in head.get("servers", []):
            if server.get("url") in base_servers:
                where = f"servers{SEP}{server.get('url')}"
                found += self._keywords(where, base_servers[server.get("url")], server)
        for path, item in head.get("paths", {}).items():
            if path in base.get("paths", {}):
                found += self._path(path, base["paths"][path], item)
        base_components, head_components = base.get("components", {}), head.get("components", {})
        for section, items in head_components.items():
            for name, node in items.items():
                before = base_components.get(section, {}).get(name)
                if before is None:
                    continue
                where = f"components{SEP}{section}{SEP}{name}"
                found += self._component(section, where, before, node)
        return found

    def _path(self, path: str, base: Schema, head: Schema) -> Iterator[Change]:
        yield from self._keywords(path, base, head)
        yield from self._parameters(path, base.get("parameters", []), head.get("parameters", []))
        for method in METHODS:
            if method not in base or method not in head:
                continue
            group = self.groups.get((path, method), "")
            label = f"{method.upper()} {path}"
            before, after = base[method], head[method]
            changes = [*self._keywords(label, before, after)]
            changes += self._parameters(
                label, before.get("parameters", []), after.get("parameters", [])
            )
            if "requestBody" in before and "requestBody" in after:
                changes += self._body(
                    f"{label}{SEP}request body", before["requestBody"], after["requestBody"]
                )
            for status, response in after.get("responses", {}).items():
                if status in before.get("responses", {}):
                    changes += self._body(
                        f"{label}{SEP}response {status}", before["responses"][status], response
                    )
            yield from (replace(change, operation=group) for change in changes)

    def _component(self, section: str, where: str, base: Any, head: Any) -> Iterator[Change]:
        if section == "schemas":
            yield from self._schema(where, base, head)
        elif section == "parameters":
            yield from self._parameter(where, base, head)
        elif section in {"responses", "requestBodies"}:
            yield from self._body(where, base, head)
        elif section == "headers":
            yield from self._keywords(where, base, head)
            yield from self._schema(where, base.get("schema", {}), head.get("schema", {}))
        elif section in {"securitySchemes", "links", "callbacks"}:
            yield from self._keywords(where, base, head)
        elif base != head:  # examples: documentation through and through
            yield Change(where, "changed", Kind.COMPATIBLE)

    def _parameters(self, where: str, base: list[Any], head: list[Any]) -> Iterator[Change]:
        def key(parameter: Any) -> Any:
            return parameter.get("$ref") or (parameter.get("in"), parameter.get("name"))

        before = {key(parameter): parameter for parameter in base}
        for parameter in head:
            if "$ref" not in parameter and key(parameter) in before:
                label = f"{where}{SEP}{parameter['in']} parameter {parameter['name']}"
                yield from self._parameter(label, before[key(parameter)], parameter)

    def _parameter(self, where: str, base: Schema, head: Schema) -> Iterator[Change]:
        yield from self._keywords(where, base, head)
        yield from self._schema(where, base.get("schema", {}), head.get("schema", {}))

    def _body(self, where: str, base: Schema, head: Schema) -> Iterator[Change]:
        """A request body or a response: a description, headers, and content by media type."""
        if "$ref" in base or "$ref" in head:
            return
        yield from self._keywords(where, base, head)
        for name, header in head.get("headers", {}).items():
            before = base.get("headers", {}).get(name)
            if before is not None and "$ref" not in header and "$ref" not in before:
                label = f"{where}{SEP}header {name}"
                yield from self._keywords(label, before, header)
                yield from self._schema(label, before.get("schema", {}), header.get("schema", {}))
        for media_type, content in head.get("content", {}).items():
            before = base.get("content", {}).get(media_type)
            if before is not None:
                label = f"{where}{SEP}{media_type}"
                yield from self._keywords(label, before, content)
                yield from self._schema(label, before.get("schema", {}), content.get("schema", {}))

    def _schema(self, where: str, base: Any, head: Any) -> Iterator[Change]:
        if not isinstance(base, Mapping) or not isinstance(head, Mapping):
            return
        if "$ref" in base or "$ref" in head:
            return  # documented where the component is written
        yield from self._keywords(where, base, head)
        for name, schema in head.get("properties", {}).items():
            if name in base.get("properties", {}):
                yield from self._schema(f"{where}{SEP}{name}", base["properties"][name], schema)
        yield from self._schema(f"{where}[]", base.get("items"), head.get("items"))
        for index, (before, after) in enumerate(
            zip(base.get("allOf", []), head.get("allOf", []), strict=False)
        ):
            yield from self._schema(f"{where}{SEP}allOf {index}", before, after)

    @staticmethod
    def _keywords(where: str, base: Schema, head: Schema) -> Iterator[Change]:
        for key in sorted(base.keys() | head.keys()):
            if not _documents(key) or base.get(key) == head.get(key):
                continue
            state = "added" if key not in base else "removed" if key not in head else "changed"
            yield Change(where, f"{key} {state}", Kind.COMPATIBLE)


def diff(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[Change]:
    """Every change from `base` to `head`: the breaking ones first, then by where they are."""
    return sorted(
        Differ(base, head).changes(), key=lambda c: (c.kind.rank, c.where, c.what, c.operation)
    )
