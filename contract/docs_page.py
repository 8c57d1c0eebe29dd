"""The Swagger UI page at /docs: our `swagger/` page around the installed Swagger UI package.

Connexion renders `swagger/index.j2` and serves `swagger/` as static files; Swagger UI itself
(the `swagger-ui-bundle-v2` package, imported as `swagger_ui_bundle`) is served from the
installed package under `/docs/dist/`, so upgrading it is a lock-file change, never a copy.
"""

from typing import Any

from connexion.options import SwaggerUIOptions
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

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


class SwaggerUIDist:
    """Serves the installed Swagger UI files under /docs/dist/, ahead of Connexion's /docs; and
    sends an `/api` request past Connexion's Swagger UI stage, which has nothing there.

    That stage routes every request through a Starlette router of its own (the page, the spec,
    their static files) before it hands on what it does not serve, as a copy of the scope: 15 us
    per API request. Its next app (`SwaggerUIMiddleware.app`) gets the same copy from here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Connexion's SwaggerUIMiddleware, which this stage is placed before, and the one after it.
        self.past_docs: ASGIApp = getattr(app, "app", app)
        self.files = StaticFiles(directory=str(swagger_ui_path))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(API_PREFIX):
                await self.past_docs(dict(scope), receive, send)
                return
            if path.startswith(SWAGGER_UI_DIST + "/"):
                # As a Starlette Mount does: the prefix moves to root_path, the rest names the file.
                mounted = {**scope, "root_path": scope.get("root_path", "") + SWAGGER_UI_DIST}
                await self.files(mounted, receive, send)
                return
        await self.app(scope, receive, send)
