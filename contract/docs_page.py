"""The Swagger UI page at /docs: our `swagger/` page around the installed Swagger UI package.

Connexion renders `swagger/index.j2` and serves `swagger/` as static files; Swagger UI itself
(the `swagger-ui-bundle-v2` package, imported as `swagger_ui_bundle`) is served from the
installed package under `/docs/dist/`, so upgrading it is a lock-file change, never a copy.
"""

import hashlib
from typing import Any

import orjson
import yaml
from connexion.options import SwaggerUIOptions
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from contract import problems
from contract.problems import Problem
from settings import DEVELOPMENT_SECRET_KEY, ROOT, Settings

DOCS_PATH = "/docs"
SWAGGER_UI_DIR = ROOT / "swagger"
SWAGGER_UI_DIST = f"{DOCS_PATH}/dist"
# Where the API's operations are (`openapi.yaml`): the Swagger UI stage serves nothing there.
API_PREFIX = "/api/"


def swagger_ui_options(settings: Settings) -> SwaggerUIOptions:
    """The page's options: the signature version it starts with and, only when the server signs
    with the public development key, that key, so a developer has nothing to look up."""
    arguments: dict[str, Any] = {"signature_version": settings.signature_min_version}
    if settings.debug and settings.secret_key is None:
        arguments["development_key"] = DEVELOPMENT_SECRET_KEY
    return SwaggerUIOptions(
        swagger_ui_path=DOCS_PATH,
        swagger_ui_template_dir=str(SWAGGER_UI_DIR),
        swagger_ui_template_arguments=arguments,
    )


JSON_DOCUMENT = "/openapi.json"
YAML_DOCUMENT = "/openapi.yaml"
MEDIA_TYPES = {JSON_DOCUMENT: "application/json", YAML_DOCUMENT: "text/yaml; charset=utf-8"}
# A client keeps the document and asks again with its ETag: a 304 costs nothing to make.
DOCUMENT_CACHING = "no-cache"


class SpecDocuments:
    """`openapi.yaml` as written, served at /openapi.json and /openapi.yaml.

    Connexion serves the document with every `$ref` inlined (a client generated from it has no
    named types) and renders it anew for each request (36 ms for the JSON, 186 ms for the
    YAML). Here the components and `$ref`s stay as written; only `servers` is adapted, as
    Connexion does, to the server that serves it (its root path). Each rendering is made once
    and served as bytes with a strong ETag, so that a client revalidates for a 304.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        """`document`: the spec as written (Connexion's `Specification.raw`)."""
        self.document = document
        self.rendered: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def render(self, path: str, root_path: str) -> tuple[bytes, bytes]:
        """The body and its ETag, made on the first request for this root path."""
        rendered = self.rendered.get((path, root_path))
        if rendered is None:
            document = {**self.document, "servers": [{"url": root_path.rstrip("/")}]}
            if path == JSON_DOCUMENT:
                body = orjson.dumps(document)
            else:
                body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
                body = body.encode()
            etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
            rendered = self.rendered[(path, root_path)] = (body, etag)
        return rendered

    def response(self, scope: Scope) -> Response:
        path: str = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            return problems.response(
                Problem(
                    405,
                    f"{scope['method']} is not supported on {path}",
                    headers={"Allow": "GET, HEAD"},
                ),
                scope,
            )
        body, etag = self.render(path, scope.get("root_path", ""))
        headers = {"ETag": etag.decode(), "Cache-Control": DOCUMENT_CACHING}
        asked = Headers(scope=scope).get("if-none-match", "")
        if etag.decode() in (tag.strip().removeprefix("W/") for tag in asked.split(",")):
            return Response(status_code=304, headers=headers)
        return Response(body, 200, headers, media_type=MEDIA_TYPES[path])


# libyaml's dumper when PyYAML was built with it: several times faster.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class SwaggerUIDist:
    """Serves the installed Swagger UI files under /docs/dist/ and the spec documents
    (`SpecDocuments`), ahead of Connexion's /docs; and sends an `/api` request past Connexion's
    Swagger UI stage, which has nothing there.

    That stage routes every request through a Starlette router of its own (the page, the spec,
    their static files) before it hands on what it does not serve, as a copy of the scope: 15 us
    per API request. Its next app (`SwaggerUIMiddleware.app`) gets the same copy from here.
    """

    def __init__(self, app: ASGIApp, *, documents: SpecDocuments) -> None:
        self.app = app
        # Connexion's SwaggerUIMiddleware, which this stage is placed before, and the one after it.
        self.past_docs: ASGIApp = getattr(app, "app", app)
        self.files = StaticFiles(directory=str(swagger_ui_path))
        self.documents = documents

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(API_PREFIX):
                await self.past_docs(dict(scope), receive, send)
                return
            if path in MEDIA_TYPES:
                await self.documents.response(scope)(scope, receive, send)
                return
            if path.startswith(SWAGGER_UI_DIST + "/"):
                # As a Starlette Mount does: the prefix moves to root_path, the rest names the file.
                mounted = {**scope, "root_path": scope.get("root_path", "") + SWAGGER_UI_DIST}
                await self.files(mounted, receive, send)
                return
        await self.app(scope, receive, send)
