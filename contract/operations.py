"""Connexion's per-request machinery, built once per operation instead of on every request.

Connexion 3.3 builds each operation's decorators and URI parser anew for every request, and
inspects the security functions' signatures on every call: under load that was about a third
of a request's CPU time (see the README's Performance section). These subclasses build the
same objects once, on an operation's first request, and reuse them.
"""

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, cast

from connexion import AsyncApp
from connexion.apps.asynchronous import AsyncApi, AsyncOperation
from connexion.context import receive, scope
from connexion.decorators import StarletteDecorator
from connexion.decorators.parameter import (
    AsyncParameterDecorator,
    inspect_function_arguments,
    prep_kwargs,
    unwrap_decorators,
)
from connexion.http_facts import FORM_CONTENT_TYPES
from connexion.lifecycle import ConnexionRequest
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.operations import AbstractOperation
from connexion.security import SECURITY_HANDLERS, AbstractSecurityHandler, ApiKeySecurityHandler

from contract.parameters import StrictURIParser
from contract.problems import Problem


class _ParameterDecorator(AsyncParameterDecorator):
    """Connexion's, less the work a request to this spec never needs: it read the form of every
    request (none of ours is a form) and ran three regular expressions over each parameter's
    name per request (their answers are cached: the names are the spec's)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sanitize_fn = functools.cache(self.sanitize_fn)

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        arguments, has_kwargs = inspect_function_arguments(unwrap_decorators(function))
        sanitize = self.sanitize_fn

        @functools.wraps(function)
        async def wrapper(request: ConnexionRequest) -> Any:
            body = self._maybe_get_body(request, arguments=arguments, has_kwargs=has_kwargs)
            while asyncio.iscoroutine(body):
                body = await body
            if isinstance(body, bytes):
                # Connexion hands over raw bytes when no validator read the body as JSON: a
                # body never reaches a handler unvalidated.
                raise Problem(
                    415, f"the request body ({request.content_type}) was not read as JSON"
                )
            files: Any = await request.files() if request.mimetype in FORM_CONTENT_TYPES else {}
            kwargs = prep_kwargs(
                request,
                request_body=body,
                files=files,
                arguments=arguments,
                has_kwargs=has_kwargs,
                sanitize=sanitize,
            )
            return await function(**kwargs)

        return wrapper


class _PrebuiltDecorator(StarletteDecorator):
    @property
    def _parameter_decorator_cls(self) -> type[AsyncParameterDecorator]:
        return _ParameterDecorator

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        built: tuple[Any, Callable[..., Any]] | None = None

        @functools.wraps(function)
        async def wrapper(*_args: Any, **_kwargs: Any) -> Any:
            nonlocal built
            if built is None:
                # The URI parser reads the current operation, known only inside a request.
                built = (self.uri_parser, self.decorate(function))
            uri_parser, decorated = built
            request = self.framework.get_request(
                uri_parser=uri_parser, scope=scope, receive=receive
            )
            return await decorated(request)

        return wrapper


class _PrebuiltOperation(AsyncOperation):
    _built: Callable[..., Any] | None = None

    @property
    def fn(self) -> Callable[..., Any]:
        if self._built is None:
            decorator = _PrebuiltDecorator(
                pythonic_params=self.pythonic_params, jsonifier=cast(Any, self.jsonifier)
            )
            self._built = decorator(self._fn)
        return self._built


class _PrebuiltApi(AsyncApi):
    def make_operation(self, operation: AbstractOperation) -> AsyncOperation:
        return _PrebuiltOperation.from_operation(
            operation, pythonic_params=self.pythonic_params, jsonifier=self.jsonifier
        )


@functools.cache
def _accepts_kwarg(func: Callable[..., Any], keyword: str) -> bool:
    return AbstractSecurityHandler._accepts_kwarg(func, keyword)


class _ApiKeyHandler(ApiKeySecurityHandler):
    @staticmethod
    def _accepts_kwarg(func: Callable[..., Any], keyword: str) -> bool:
        return _accepts_kwarg(func, keyword)


# Its only message, "this operation accepts multiple content types", comes several times on every
# request to an operation whose body has two media types (our PATCHes and POSTs), even when the
# request names its type: six lines per request, and a fifth of its CPU.
CONTENT_TYPES_LOGGER = "connexion.operations.openapi3"


def _stages(validate_responses: bool) -> list[Any]:
    """Connexion's middleware stack, less two layers every request would pass through for
    nothing: response validation when it is off (Connexion keeps the stage, validating nothing),
    and the security stage. Every secured operation is under `/api`, where
    `middleware.signature` has verified the request before routing; Connexion's stage then
    only called `signature_info`, which passes what was verified (20 us per request)."""
    return [
        stage
        for stage in ConnexionMiddleware.default_middlewares
        if (validate_responses or stage is not ResponseValidationMiddleware)
        and stage is not SecurityMiddleware
    ]


class PrebuiltAsyncApp(AsyncApp):
    """Connexion's AsyncApp, with operations and API-key checks that are built only once."""

    def __init__(self, import_name: str, **options: Any) -> None:
        logging.getLogger(CONTENT_TYPES_LOGGER).setLevel(logging.ERROR)
        options.setdefault("middlewares", _stages(options.get("validate_responses", False)))
        options.setdefault("uri_parser_class", StrictURIParser)
        security_map = {**SECURITY_HANDLERS, "apiKey": _ApiKeyHandler}
        super().__init__(import_name, security_map=security_map, **options)
        self._middleware_app.api_cls = _PrebuiltApi
