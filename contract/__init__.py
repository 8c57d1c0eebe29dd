"""How Connexion serves `openapi.yaml`: validators, problem+json, JSON, every framework override.

Each override of Connexion's own behaviour lives in this folder, and
tests/test_connexion_overrides.py fails, naming it, if what it relies on changes (pyproject.toml
pins Connexion to the minor version those tests cover):

- `operations.PrebuiltAsyncApp` sets `_middleware_app.api_cls`, subclasses `AsyncApi`,
  `AsyncOperation` and `StarletteDecorator`: Connexion 3.3 rebuilds each operation's decorators
  on every request, a third of its CPU (upstream: spec-first/connexion#2045, Connexion 3 is slow).
- `operations._ParameterDecorator` subclasses `AsyncParameterDecorator` (through
  `StarletteDecorator._parameter_decorator_cls`): Connexion reads the form of every request and
  sanitizes each parameter name with three regular expressions per request.
- `docs_page.SwaggerUIDist` calls `SwaggerUIMiddleware.app` for `/api/` requests: Connexion's
  Swagger UI stage routes every request through its own router before handing it on.
- `operations._ApiKeyHandler` overrides `AbstractSecurityHandler._accepts_kwarg`: Connexion
  inspects the security function's signature on every call; the answer is cached.
- `operations.PrebuiltAsyncApp` leaves out `ResponseValidationMiddleware` when responses are not
  validated: Connexion keeps the stage, and its layer, even then. It also leaves out
  `SecurityMiddleware`: `middleware.signature` verifies every `/api` request before routing.
- `operations.PrebuiltAsyncApp` quiets the `connexion.operations.openapi3` logger: it warns
  "this operation accepts multiple content types" several times on every POST and PATCH.
- `validation` subclasses `JSONRequestBodyValidator` (`_parse`, `_validate`) and
  `ParameterValidator` (deduplicated parameters, errors naming the field): Connexion 3.3 appends
  path-level parameters once per middleware, and its errors do not say which field failed.
- Here, before anything imports Connexion: Connexion 3.3 imports `starlette.testclient`, which
  warns that its httpx is deprecated (upstream: Kludex/starlette#3291), on every start.
"""

import warnings

warnings.filterwarnings(
    "ignore",
    message="Using `httpx` with `starlette.testclient` is deprecated",
    category=UserWarning,
)
