"""The live flow through the Python client openapi-generator generates, signed in `call_api`.

    python flow.py BASE_URL KEY   (with the generated `backoffice_openapi_client` importable)

Prints one JSON line per step; exits non-zero at the first unexpected answer.
"""

import hashlib
import hmac
import json
import sys
import time
from typing import override

from backoffice_openapi_client import (
    ApiClient,
    ApiException,
    Configuration,
    Hero,
    HeroCreate,
    HeroesApi,
    HeroPatch,
    Problem,
    TeamCreate,
    TeamsApi,
)
from backoffice_openapi_client.rest import RESTResponse


class SigningApiClient(ApiClient):
    """Signs version 1 in `call_api`, through which every request of the client passes."""

    def __init__(self, configuration: Configuration, key: str) -> None:
        super().__init__(configuration)
        self.key = key.encode()
        self.last = 0

    @override
    def call_api(
        self,
        method: str,
        url: str,
        header_params: dict[str, str] | None = None,
        body: object = None,
        post_params: list[tuple[str, object]] | None = None,
        _request_timeout: float | tuple[float, float] | None = None,
    ) -> RESTResponse:
        # The bytes the client's REST layer sends: `json.dumps` of the sanitized body.
        payload = b"" if body is None else json.dumps(body).encode()
        # Each signature of a POST, PATCH or DELETE is accepted once: never reuse a millisecond.
        self.last = max(self.last + 1, time.time_ns() // 1_000_000)
        timestamp = str(self.last)
        signed = method.encode() + b"|" + payload + b"|" + timestamp.encode()
        headers = dict(header_params or {})
        headers["x-timestamp"] = timestamp
        headers["x-signature"] = hmac.new(self.key, signed, hashlib.sha256).hexdigest()
        return super().call_api(method, url, headers, body, post_params, _request_timeout)


def say(step: str, status: int, **extra: object) -> None:
    print(json.dumps({"step": step, "status": status, **extra}))


def refused(step: str, error: ApiException, status: int) -> None:
    problem = Problem.from_json(error.body) if isinstance(error.body, str) else None
    if error.status != status or problem is None:
        raise SystemExit(f"{step}: expected a {status} problem, got {error.status} {error.body}")
    say(step, status, detail=problem.detail)


def main(base_url: str, key: str) -> None:
    client = SigningApiClient(Configuration(host=base_url), key)
    heroes_api, teams_api = HeroesApi(client), TeamsApi(client)
    team_body = TeamCreate(name=f"Preventers {time.time_ns()}", headquarters="Sharp Tower")

    team = teams_api.create_team_with_http_info(team_body)
    say("create team", team.status_code)
    heroes: list[Hero] = []
    for name in ("Deadpond", "Rusty-Man"):
        body = HeroCreate(name=name, secret_name="Dive Wilson", age=30, team_id=team.data.id)
        created = heroes_api.create_hero_with_http_info(body)
        say("create hero", created.status_code)
        heroes.append(created.data)

    seen: list[int] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = heroes_api.list_heroes(team_id=team.data.id, limit=1, cursor=cursor)
        pages += 1
        seen.extend(hero.id for hero in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    if seen != [hero.id for hero in heroes]:
        raise SystemExit(f"page through heroes: expected {[h.id for h in heroes]}, got {seen}")
    say("page through heroes", 200, pages=pages)

    hero_id = heroes[0].id
    read = heroes_api.get_hero_with_http_info(hero_id)
    say("get hero", read.status_code)
    etag = (read.headers or {})["etag"]
    # openapi-generator's clients raise for every status outside 2xx, 304 included; the
    # exception carries no body, and no Problem.
    try:
        heroes_api.get_hero_with_http_info(hero_id, if_none_match=etag)
        raise SystemExit("get unchanged hero: expected 304")
    except ApiException as error:
        if error.status != 304 or error.data is not None:
            raise
        say("get unchanged hero", 304)

    patched = heroes_api.update_hero_with_http_info(
        hero_id, HeroPatch(name="Deadpond Prime", age=None), if_match=etag
    )
    if patched.data.name != "Deadpond Prime" or patched.data.age is not None:
        raise SystemExit(f"patch hero: got {patched.data}")
    say("patch hero", patched.status_code)

    deleted = heroes_api.delete_hero_with_http_info(
        hero_id, if_match=(patched.headers or {})["etag"]
    )
    say("delete hero", deleted.status_code)

    try:
        heroes_api.get_hero(hero_id)
        raise SystemExit("get deleted hero: expected 404")
    except ApiException as error:
        refused("get deleted hero", error, 404)
    try:
        teams_api.create_team(team_body)
        raise SystemExit("create team again: expected 409")
    except ApiException as error:
        refused("create team again", error, 409)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
