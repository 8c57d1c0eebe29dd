"""The live flow through the client openapi-python-client generates, signed by an httpx hook.

    python flow.py BASE_URL KEY   (with the generated `backoffice_client` importable)

Prints one JSON line per step; exits non-zero at the first unexpected answer.
"""

import hashlib
import hmac
import json
import sys
import time

import httpx
from backoffice_client import Client
from backoffice_client.api.heroes import (
    create_hero,
    delete_hero,
    get_hero,
    list_heroes,
    update_hero,
)
from backoffice_client.api.teams import create_team
from backoffice_client.models import Hero, HeroCreate, HeroPage, HeroPatch, Problem, Team, TeamCreate
from backoffice_client.types import UNSET, Response, Unset


class V1Signer:
    """An httpx request hook: x-timestamp and x-signature over `{METHOD}|{body}|{timestamp}`."""

    def __init__(self, key: str) -> None:
        self.key = key.encode()
        self.last = 0

    def __call__(self, request: httpx.Request) -> None:
        # Each signature of a POST, PATCH or DELETE is accepted once: never reuse a millisecond.
        self.last = max(self.last + 1, time.time_ns() // 1_000_000)
        timestamp = str(self.last)
        signed = request.method.encode() + b"|" + request.content + b"|" + timestamp.encode()
        request.headers["x-timestamp"] = timestamp
        request.headers["x-signature"] = hmac.new(self.key, signed, hashlib.sha256).hexdigest()


def step[T](name: str, response: Response[T | Problem], status: int) -> T:
    parsed = response.parsed
    if response.status_code != status or isinstance(parsed, Problem) or parsed is None:
        raise SystemExit(f"{name}: expected {status}, got {response.status_code} {response.content!r}")
    print(json.dumps({"step": name, "status": status}))
    return parsed


def problem[T](name: str, response: Response[T], status: int) -> None:
    if response.status_code != status or not isinstance(response.parsed, Problem):
        raise SystemExit(f"{name}: expected a {status} problem, got {response.content!r}")
    print(json.dumps({"step": name, "status": status, "detail": response.parsed.detail}))


def main(base_url: str, key: str) -> None:
    client = Client(base_url=base_url, httpx_args={"event_hooks": {"request": [V1Signer(key)]}})
    team_name = f"Preventers {time.time_ns()}"
    team_body = TeamCreate(name=team_name, headquarters="Sharp Tower")

    team = step(
        "create team",
        create_team.sync_detailed(client=client, body=team_body),
        201,
    )
    assert isinstance(team, Team)
    heroes: list[Hero] = []
    for name in ("Deadpond", "Rusty-Man"):
        body = HeroCreate(name=name, secret_name="Dive Wilson", age=30, team_id=team.id)
        created = step(
            "create hero", create_hero.sync_detailed(client=client, body=body), 201
        )
        heroes.append(created)

    seen: list[int] = []
    pages = 0
    cursor: str | Unset = UNSET
    while True:
        pages += 1
        page = list_heroes.sync_detailed(
            client=client, team_id=team.id, limit=1, cursor=cursor
        )
        parsed = page.parsed
        if not isinstance(parsed, HeroPage):
            raise SystemExit(f"page through heroes: {page.status_code} {page.content!r}")
        seen.extend(hero.id for hero in parsed.items)
        if parsed.next_cursor is None:
            break
        cursor = parsed.next_cursor
    if seen != [hero.id for hero in heroes]:
        raise SystemExit(f"page through heroes: expected {[h.id for h in heroes]}, got {seen}")
    print(json.dumps({"step": "page through heroes", "status": 200, "pages": pages}))

    hero_id = heroes[0].id
    read = get_hero.sync_detailed(hero_id, client=client)
    step("get hero", read, 200)
    etag = read.headers["etag"]
    unchanged = get_hero.sync_detailed(hero_id, client=client, if_none_match=etag)
    if unchanged.status_code != 304 or unchanged.parsed is not None:
        raise SystemExit(f"get unchanged hero: expected 304, got {unchanged.status_code}")
    print(json.dumps({"step": "get unchanged hero", "status": 304}))

    patched = update_hero.sync_detailed(
        hero_id, client=client, body=HeroPatch(name="Deadpond Prime", age=None), if_match=etag
    )
    renamed = step("patch hero", patched, 200)
    if renamed.name != "Deadpond Prime" or renamed.age is not None:
        raise SystemExit(f"patch hero: got {renamed.to_dict()}")

    deleted = delete_hero.sync_detailed(
        hero_id, client=client, if_match=patched.headers["etag"]
    )
    if deleted.status_code != 204:
        raise SystemExit(f"delete hero: expected 204, got {deleted.status_code}")
    print(json.dumps({"step": "delete hero", "status": 204}))

    problem("get deleted hero", get_hero.sync_detailed(hero_id, client=client), 404)
    problem(
        "create team again",
        create_team.sync_detailed(client=client, body=team_body),
        409,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
