"""Each override of Connexion (listed in contract/__init__.py) still finds what it relies on.

A Connexion upgrade that renames or removes one of these fails here, naming the override,
instead of silently serving requests without it (or failing on the first request).
"""

import inspect
import logging
from collections.abc import Callable
from typing import Any

from connexion.apps.asynchronous import AsyncApi, AsyncASGIApp, AsyncOperation
from connexion.context import receive, scope
from connexion.datastructures import MediaTypeDict
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import AsyncParameterDecorator, prep_kwargs
from connexion.frameworks.starlette import Starlette as StarletteFramework
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.security import SECURITY_HANDLERS, AbstractSecurityHandler, ApiKeySecurityHandler
from connexion.spec import Specification
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from starlette.routing import Match, Mount, Route
from starlette.testclient import TestClient

from app import SPEC, create_app
from contract.docs_page import API_PREFIX, SwaggerUIDist
from contract.operations import (
    CONTENT_TYPES_LOGGER,
    PrebuiltAsyncApp,
    _ParameterDecorator,
    _PrebuiltApi,
    _PrebuiltDecorator,
    _stages,
)
from contract.problems import HTTP_METHODS
from contract.routes import Routes
from contract.validation import JSONBodyValidator, ParametersValidator, validator_map
from handlers import OPERATIONS
from middleware.signature import SIGNED_PREFIX
from settings import Settings


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_prebuilt_operations_can_replace_the_api_class() -> None:
    """operations.PrebuiltAsyncApp: `_middleware_app.api_cls`."""
    assert AsyncASGIApp.api_cls is AsyncApi, "PrebuiltAsyncApp: api_cls moved"
    app = PrebuiltAsyncApp(__name__)
    assert app._middleware_app.api_cls is _PrebuiltApi, "PrebuiltAsyncApp: _middleware_app"


def test_prebuilt_operations_find_the_api_operation_and_decorator_hooks() -> None:
    """operations._PrebuiltApi, _PrebuiltOperation and _PrebuiltDecorator."""
    assert parameters(AsyncApi.make_operation) == ["self", "operation"], "_PrebuiltApi"
    assert isinstance(inspect.getattr_static(AsyncOperation, "fn"), property), "_PrebuiltOperation"
    assert "_fn" in inspect.getsource(AsyncOperation.__init__), "_PrebuiltOperation: _fn"
    assert {"pythonic_params", "jsonifier"} <= set(parameters(AsyncOperation.from_operation)), (
        "_PrebuiltOperation: from_operation"
    )
    assert {"pythonic_params", "jsonifier"} <= set(parameters(StarletteDecorator.__init__)), (
        "_PrebuiltDecorator: constructor"
    )
    assert isinstance(inspect.getattr_static(StarletteDecorator, "uri_parser"), property), (
        "_PrebuiltDecorator: uri_parser"
    )
    assert callable(StarletteDecorator.decorate), "_PrebuiltDecorator: decorate"
    assert StarletteDecorator.framework is StarletteFramework, "_PrebuiltDecorator: framework"
    assert {"uri_parser", "scope", "receive"} <= set(parameters(StarletteFramework.get_request)), (
        "_PrebuiltDecorator: framework.get_request"
    )
    assert scope is not None, "_PrebuiltDecorator: connexion.context.scope"
    assert receive is not None, "_PrebuiltDecorator: connexion.context.receive"


def test_the_parameter_decorator_replaces_connexions_with_the_same_steps() -> None:
    """operations._ParameterDecorator: Connexion's parameter decorator, its helpers and hook."""
    assert isinstance(
        inspect.getattr_static(StarletteDecorator, "_parameter_decorator_cls"), property
    ), "_ParameterDecorator: _parameter_decorator_cls"
    assert parameters(AsyncParameterDecorator.__init__) == [
        "self",
        "framework",
        "pythonic_params",
    ], "_ParameterDecorator: constructor"
    assert parameters(AsyncParameterDecorator._maybe_get_body) == [
        "self",
        "request",
        "arguments",
        "has_kwargs",
    ], "_ParameterDecorator: _maybe_get_body"
    assert parameters(prep_kwargs) == [
        "request",
        "request_body",
        "files",
        "arguments",
        "has_kwargs",
        "sanitize",
    ], "_ParameterDecorator: prep_kwargs"
    # The steps of Connexion's own wrapper that ours repeats, in its source.
    source = inspect.getsource(AsyncParameterDecorator.__call__)
    for step in ("_maybe_get_body", "prep_kwargs", "await request.files()", "inspect_function"):
        assert step in source, f"_ParameterDecorator: Connexion's wrapper no longer has {step}"
    decorator = _PrebuiltDecorator(pythonic_params=False)
    assert decorator._parameter_decorator_cls is _ParameterDecorator


def test_the_api_key_handler_can_cache_its_signature_checks() -> None:
    """operations._ApiKeyHandler: `AbstractSecurityHandler._accepts_kwarg`."""
    accepts = inspect.getattr_static(AbstractSecurityHandler, "_accepts_kwarg")
    assert isinstance(accepts, staticmethod), "_ApiKeyHandler: _accepts_kwarg"
    assert parameters(AbstractSecurityHandler._accepts_kwarg) == ["func", "keyword"], (
        "_ApiKeyHandler: _accepts_kwarg"
    )
    assert SECURITY_HANDLERS["apiKey"] is ApiKeySecurityHandler, "_ApiKeyHandler: apiKey"


def test_the_response_validation_stage_can_be_left_out() -> None:
    """operations._stages: `ConnexionMiddleware.default_middlewares`."""
    assert ResponseValidationMiddleware in ConnexionMiddleware.default_middlewares, "_stages"


def test_the_security_stage_is_left_out_only_because_every_secured_operation_is_signed() -> None:
    """operations._stages: the signature middleware covers every operation that has security."""
    assert SecurityMiddleware in ConnexionMiddleware.default_middlewares, "_stages"
    assert SecurityMiddleware not in _stages(validate_responses=True)
    spec = Specification.load(SPEC)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS and operation.get("security", spec["security"]):
                assert path.startswith(SIGNED_PREFIX), f"{method} {path} is secured but unsigned"


def test_the_content_types_warning_comes_from_the_logger_we_quiet() -> None:
    """operations.CONTENT_TYPES_LOGGER."""
    from connexion.operations import openapi

    assert openapi.logger.name == CONTENT_TYPES_LOGGER, "CONTENT_TYPES_LOGGER"
    assert "this operation accepts multiple content types" in inspect.getsource(openapi), (
        "CONTENT_TYPES_LOGGER: the message is gone; drop the override"
    )
    PrebuiltAsyncApp(__name__)
    assert logging.getLogger(CONTENT_TYPES_LOGGER).level == logging.ERROR, "CONTENT_TYPES_LOGGER"


def test_the_body_validator_overrides_what_connexion_calls() -> None:
    """validation.JSONBodyValidator: `_parse`, `_validate`, `_schema`, `_nullable`."""
    for hook in ("_parse", "_validate"):
        assert hook in vars(JSONRequestBodyValidator), f"JSONBodyValidator: {hook}"
    validator = JSONBodyValidator(
        schema={"type": "object"}, nullable=False, encoding="utf-8", strict_validation=True
    )
    assert validator._schema == {"type": "object"}, "JSONBodyValidator: _schema"
    assert validator._nullable is False, "JSONBodyValidator: _nullable"
    assert isinstance(VALIDATOR_MAP["body"], MediaTypeDict), "VALIDATORS: body"
    assert issubclass(validator_map()["body"]["application/json"], JSONBodyValidator), (
        "validator_map: body"
    )


def test_the_parameter_validator_overrides_what_connexion_calls() -> None:
    """validation.ParametersValidator: the constructor, `validate_request` and its helpers."""
    assert parameters(ParameterValidator.__init__) == [
        "self",
        "parameters",
        "uri_parser",
        "strict_validation",
        "security_query_params",
    ], "ParametersValidator: __init__"
    assert "validate_request" in vars(ParameterValidator), "ParametersValidator: validate_request"
    assert callable(ParameterValidator.validate_query_parameter_list), (
        "ParametersValidator: validate_query_parameter_list"
    )
    validator = ParametersValidator([], uri_parser=None, strict_validation=True)
    for attribute in ("parameters", "strict_validation", "security_query_params"):
        assert hasattr(validator, attribute), f"ParametersValidator: {attribute}"
    assert issubclass(validator_map()["parameter"], ParametersValidator), "validator_map: parameter"


def _connexion_routes(router: Any) -> list[Route]:
    found: list[Route] = []
    for route in getattr(router, "routes", []):
        if isinstance(route, Mount):
            found.extend(_connexion_routes(route.app))
        elif isinstance(route, Route):
            found.append(route)
    return found


def test_our_route_table_names_the_operation_connexions_router_routes_to(
    backend_settings: dict[str, Settings],
) -> None:
    """contract.routes: the outer layers name the operation Connexion will run, for each one."""
    app = create_app(backend_settings["postgresql"])
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        stack: list[Any] = list(app.middleware.middleware_stack or [])
    routing = stack[[type(stage) for stage in stack].index(RoutingMiddleware)]
    connexion_routes = _connexion_routes(routing.router)
    paths = Specification.load(SPEC)["paths"]
    ours = Routes(paths)
    checked = 0
    for template, item in paths.items():
        path = template.replace("{hero_id}", "7").replace("{team_id}", "3")
        for method in (m.upper() for m in item if m in HTTP_METHODS):
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            (routed,) = [r for r in connexion_routes if r.matches(scope)[0] is Match.FULL]
            route = ours.match(method, path)
            assert route is not None, (method, path)
            endpoint: Any = routed.endpoint
            assert route.operation_id == endpoint.operation_id, (method, path)
            checked += 1
    assert checked == len(OPERATIONS)


def test_api_requests_skip_the_swagger_ui_stage_to_the_stage_after_it(
    backend_settings: dict[str, Settings],
) -> None:
    """docs_page.SwaggerUIDist: `SwaggerUIMiddleware.app` is the next stage, and the Swagger UI
    stage serves nothing under /api/ (no route of its router is there)."""
    app = create_app(backend_settings["postgresql"])
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
        stack: list[Any] = list(app.middleware.middleware_stack or [])
    kinds: list[type] = [type(stage) for stage in stack]
    dist = stack[kinds.index(SwaggerUIDist)]
    docs = stack[kinds.index(SwaggerUIMiddleware)]
    assert dist.app is docs, "SwaggerUIDist is placed just before Connexion's Swagger UI stage"
    assert dist.past_docs is docs.app is stack[kinds.index(SwaggerUIMiddleware) + 1]
    for route in docs.router.routes:
        for method in ("GET", "POST"):
            scope = {"type": "http", "path": "/api/heroes", "method": method, "root_path": ""}
            assert route.matches(scope)[0] is not Match.FULL or isinstance(route, Mount), route
        if isinstance(route, Mount):
            assert all(not getattr(sub, "path", "").startswith(API_PREFIX) for sub in route.routes)
