"""Lists the changes to `openapi.yaml` since a base revision, and fails on breaking ones.

    uv run python -m tools.spec_diff                   # against the merge base with main
    uv run python -m tools.spec_diff --base v1.0.0     # against a release
    uv run python -m tools.spec_diff --allow-breaking  # list them, but exit 0 (a deliberate break)

Breaking: whatever a client written against the base can no longer rely on. An operation or
response removed; a new required parameter, header or body property; a request value the base
accepted that is now refused (a narrower type, range, length, enum or pattern, a property that
is gone where unknown ones are refused); a response that may now hold what the base ruled out
(a new type, `null`, an enum value) or lacks what it promised (a property, a header).
"""

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

SPEC = "openapi.yaml"
DESCRIPTION = "List the changes to openapi.yaml since a base revision; fail on breaking ones."
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Request bounds that may only widen, and whether a larger value is the wider one.
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
# Keywords whose mere change makes a request value possibly refused.
EXACT_IN_REQUESTS = ("pattern", "format", "multipleOf", "exclusiveMaximum", "exclusiveMinimum")

type Schema = Mapping[str, Any]
type Direction = Literal["request", "response"]


@dataclass(frozen=True, order=True)
class Change:
    where: str
    what: str
    breaking: bool

    def __str__(self) -> str:
        return f"{'BREAKING' if self.breaking else 'ok      '}  {self.where}: {self.what}"


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


@dataclass(frozen=True)
class Operation:
    label: str
    spec: Schema
    # By location and name (header names folded; path parameters by position, as clients
    # fill the URL by position and a renamed one changes nothing on the wire).
    parameters: dict[tuple[str, str], Schema]


def _operations(document: Mapping[str, Any], resolve: Resolver) -> dict[tuple[str, str], Operation]:
    operations: dict[tuple[str, str], Operation] = {}
    for path, item in (document.get("paths") or {}).items():
        placeholders = [part for part in path.split("/") if part.startswith("{")]
        shape = "/".join("{}" if part.startswith("{") else part for part in path.split("/"))
        for method in METHODS:
            if method not in item:
                continue
            parameters: dict[tuple[str, str], Schema] = {}
            for reference in [*item.get("parameters", []), *item[method].get("parameters", [])]:
                parameter = resolve(reference)
                name: str = parameter["name"]
                location: str = parameter["in"]
                if location == "path" and "{" + name + "}" in placeholders:
                    name = str(placeholders.index("{" + name + "}"))
                elif location == "header":
                    name = name.lower()
                parameters[(location, name)] = parameter
            operations[(shape, method)] = Operation(
                f"{method.upper()} {path}", item[method], parameters
            )
    return operations


class Differ:
    def __init__(self, base: Mapping[str, Any], head: Mapping[str, Any]) -> None:
        self.base, self.head = Resolver(base), Resolver(head)
        self.base_doc, self.head_doc = base, head

    def changes(self) -> list[Change]:
        base_ops = _operations(self.base_doc, self.base)
        head_ops = _operations(self.head_doc, self.head)
        found: list[Change] = []
        for key in sorted(base_ops.keys() - head_ops.keys()):
            found.append(Change(base_ops[key].label, "operation removed", breaking=True))
        for key in sorted(head_ops.keys() - base_ops.keys()):
            found.append(Change(head_ops[key].label, "operation added", breaking=False))
        for key in sorted(base_ops.keys() & head_ops.keys()):
            base, head = base_ops[key], head_ops[key]
            found += self._parameters(base.label, base.parameters, head.parameters)
            found += self._request_body(base.label, base.spec, head.spec)
            found += self._responses(base.label, base.spec, head.spec)
        return found

    def _parameters(
        self,
        label: str,
        base: dict[tuple[str, str], Schema],
        head: dict[tuple[str, str], Schema],
    ) -> Iterator[Change]:
        for key, parameter in base.items():
            where = f"{label} {key[0]} parameter {parameter['name']!r}"
            if key not in head:
                yield Change(where, "removed (clients sending it are refused)", breaking=True)
                continue
            if head[key].get("required") and not parameter.get("required"):
                yield Change(where, "now required", breaking=True)
            yield from self._schema(
                where,
                self.base(parameter.get("schema", {})),
                self.head(head[key].get("schema", {})),
                "request",
            )
        for key, parameter in head.items():
            if key not in base:
                where = f"{label} {key[0]} parameter {parameter['name']!r}"
                required = bool(parameter.get("required"))
                yield Change(where, "added, required" if required else "added", breaking=required)

    def _request_body(self, label: str, base_op: Schema, head_op: Schema) -> Iterator[Change]:
        base_body = self.base(base_op.get("requestBody")) or {}
        head_body = self.head(head_op.get("requestBody")) or {}
        where = f"{label} request body"
        if head_body.get("required") and not base_body.get("required"):
            yield Change(where, "now required", breaking=True)
        base_content, head_content = base_body.get("content", {}), head_body.get("content", {})
        for media_type, content in base_content.items():
            if media_type not in head_content:
                yield Change(where, f"{media_type} no longer accepted", breaking=True)
                continue
            yield from self._schema(
                f"{where} ({media_type})",
                self.base(content.get("schema", {})),
                self.head(head_content[media_type].get("schema", {})),
                "request",
            )
        for media_type in head_content.keys() - base_content.keys():
            yield Change(where, f"{media_type} now accepted", breaking=False)

    def _responses(self, label: str, base_op: Schema, head_op: Schema) -> Iterator[Change]:
        base_responses, head_responses = base_op.get("responses", {}), head_op.get("responses", {})
        for status, base_response in base_responses.items():
            where = f"{label} response {status}"
            if status not in head_responses:
                yield Change(where, "removed", breaking=str(status).startswith("2"))
                continue
            base_r, head_r = self.base(base_response), self.head(head_responses[status])
            for name in base_r.get("headers", {}):
                if name.lower() not in {h.lower() for h in head_r.get("headers", {})}:
                    yield Change(where, f"header {name} removed", breaking=True)
            head_content = head_r.get("content", {})
            for media_type, content in base_r.get("content", {}).items():
                if media_type not in head_content:
                    yield Change(where, f"{media_type} body removed", breaking=True)
                    continue
                yield from self._schema(
                    f"{where} ({media_type})",
                    self.base(content.get("schema", {})),
                    self.head(head_content[media_type].get("schema", {})),
                    "response",
                )
        for status in head_responses.keys() - base_responses.keys():
            yield Change(f"{label} response {status}", "added", breaking=False)

    def _schema(
        self, where: str, base: Schema, head: Schema, direction: Direction
    ) -> Iterator[Change]:
        base_types, head_types = _types(base), _types(head)
        if direction == "request":
            if not _covers(head_types, base_types):
                yield Change(where, f"type {_show(base_types)} -> {_show(head_types)}", True)
        elif not _covers(base_types, head_types):
            yield Change(where, f"type {_show(base_types)} -> {_show(head_types)}", True)
        yield from self._enum(where, base, head, direction)
        if direction == "request":
            yield from self._bounds(where, base, head)
        yield from self._properties(where, base, head, direction)
        if "items" in base and "items" in head:
            yield from self._schema(
                f"{where}[]", self.base(base["items"]), self.head(head["items"]), direction
            )

    @staticmethod
    def _enum(where: str, base: Schema, head: Schema, direction: Direction) -> Iterator[Change]:
        base_values, head_values = base.get("enum"), head.get("enum")
        if base_values == head_values:
            return
        if direction == "request":
            refused = (
                []
                if head_values is None
                else [v for v in base_values or [] if v not in head_values]
            )
            if head_values is not None and (base_values is None or refused):
                yield Change(where, f"enum narrowed: {refused or head_values} refused", True)
            elif head_values is None or len(head_values) > len(base_values or []):
                yield Change(where, "enum widened", breaking=False)
        else:
            new = (
                ["any value"]
                if head_values is None
                else [v for v in head_values if v not in (base_values or [])]
            )
            if base_values is not None and new:
                yield Change(where, f"may now return {new}", breaking=True)

    @staticmethod
    def _bounds(where: str, base: Schema, head: Schema) -> Iterator[Change]:
        for keyword, larger_is_wider in BOUNDS.items():
            before, after = base.get(keyword), head.get(keyword)
            if after is None or before == after:
                continue
            narrower = before is None or (after < before if larger_is_wider else after > before)
            if narrower:
                yield Change(where, f"{keyword} {before} -> {after}", breaking=True)
        for keyword in EXACT_IN_REQUESTS:
            if head.get(keyword) is not None and head.get(keyword) != base.get(keyword):
                yield Change(where, f"{keyword} {base.get(keyword)!r} -> {head[keyword]!r}", True)

    def _properties(
        self, where: str, base: Schema, head: Schema, direction: Direction
    ) -> Iterator[Change]:
        base_props, head_props = base.get("properties", {}), head.get("properties", {})
        base_required, head_required = set(base.get("required", [])), set(head.get("required", []))
        skipped = "readOnly" if direction == "request" else "writeOnly"
        for name, schema in base_props.items():
            base_prop = self.base(schema)
            if base_prop.get(skipped):
                continue
            field = f"{where} property {name!r}"
            if name not in head_props:
                refused = direction == "request" and head.get("additionalProperties") is False
                yield Change(field, "removed", breaking=direction == "response" or refused)
                continue
            head_prop = self.head(head_props[name])
            if direction == "request" and name in head_required - base_required:
                yield Change(field, "now required", breaking=True)
            if direction == "response" and name in base_required - head_required:
                yield Change(field, "no longer always present", breaking=True)
            yield from self._schema(field, base_prop, head_prop, direction)
        for name in head_props.keys() - base_props.keys():
            required = direction == "request" and name in head_required
            what = "added, required" if required else "added"
            yield Change(f"{where} property {name!r}", what, breaking=required)
        if (
            direction == "request"
            and base.get("additionalProperties") is not False
            and head.get("additionalProperties") is False
            and base.get("type") == "object"
        ):
            yield Change(where, "unknown properties now refused", breaking=True)


def _show(types: set[str]) -> str:
    return "|".join(sorted(types))


def diff(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[Change]:
    """Every change from `base` to `head`, breaking ones first."""
    return sorted(Differ(base, head).changes(), key=lambda change: (not change.breaking, change))


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        raise SystemExit("git is not on the PATH")
    # Fixed git subcommands; the only caller-given part is a revision name, passed as one argv.
    result = subprocess.run([git, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def default_base() -> str:
    """The merge base with main; on main itself, the previous commit."""
    if _git("rev-parse", "--abbrev-ref", "HEAD") == "main":
        return "HEAD~"
    return _git("merge-base", "HEAD", "main")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools.spec_diff", description=DESCRIPTION)
    parser.add_argument("--base", help="git revision to compare with (default: see above)")
    parser.add_argument("--spec", default=SPEC, help="the spec's path in the repository")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="report breaking changes, exit 0"
    )
    options = parser.parse_args(argv)
    base_rev = options.base or default_base()
    base = yaml.safe_load(_git("show", f"{base_rev}:{options.spec}"))
    head = yaml.safe_load((Path(_git("rev-parse", "--show-toplevel")) / options.spec).read_text())
    changes = diff(base, head)
    breaking = [change for change in changes if change.breaking]
    print(f"{options.spec}: {base_rev} -> working tree: {len(changes)} change(s)")
    for change in changes:
        print(f"  {change}")
    if breaking and not options.allow_breaking:
        print(
            f"{len(breaking)} breaking change(s): keep the old behaviour alongside the new, or "
            "make the break deliberate (--allow-breaking, and say so in the review)"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
