"""Lists: keyset pages in `id` order, filters, and cursors."""

import threading
from typing import Any

import pytest

from persistence.pagination import decode_cursor, encode_cursor
from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient


def add_heroes(client: SignedClient, count: int, **fields: Any) -> list[int]:
    ids = []
    for number in range(count):
        response = client.post(
            "/api/heroes", json={"name": f"Hero {number}", "secret_name": "s"} | fields
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def all_pages(client: SignedClient, path: str, **params: Any) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        body = client.get(path, params=query).json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


class TestListHeroes:
    def test_empty_table_gives_an_empty_last_page(self, client: SignedClient) -> None:
        assert client.get("/api/heroes").json() == {"items": [], "next_cursor": None}

    def test_pages_cover_every_hero_once_in_id_order(self, client: SignedClient) -> None:
        ids = add_heroes(client, 7)

        pages = all_pages(client, "/api/heroes", limit=3)

        assert pages == [ids[0:3], ids[3:6], ids[6:7]]

    def test_an_exactly_full_last_page_has_no_next_cursor(self, client: SignedClient) -> None:
        ids = add_heroes(client, 4)

        assert all_pages(client, "/api/heroes", limit=2) == [ids[0:2], ids[2:4]]

    def test_default_limit_is_50(self, client: SignedClient) -> None:
        add_heroes(client, 51)

        body = client.get("/api/heroes").json()

        assert len(body["items"]) == 50
        assert body["next_cursor"] is not None

    def test_filter_by_team(self, client: SignedClient) -> None:
        team = client.post("/api/teams", json={"name": "T", "headquarters": "H"}).json()
        add_heroes(client, 2)
        in_team = add_heroes(client, 3, team_id=team["id"])

        assert all_pages(client, "/api/heroes", team_id=team["id"], limit=2) == [
            in_team[0:2],
            in_team[2:3],
        ]

    def test_filter_by_exact_name(self, client: SignedClient) -> None:
        add_heroes(client, 3)

        body = client.get("/api/heroes", params={"name": "Hero 1"}).json()

        assert [hero["name"] for hero in body["items"]] == ["Hero 1"]

    def test_filters_combine(self, client: SignedClient) -> None:
        team = client.post("/api/teams", json={"name": "T", "headquarters": "H"}).json()
        add_heroes(client, 2)
        in_team = add_heroes(client, 2, team_id=team["id"])

        body = client.get("/api/heroes", params={"name": "Hero 1", "team_id": team["id"]}).json()

        assert [hero["id"] for hero in body["items"]] == [in_team[1]]

    @pytest.mark.parametrize(
        ("limit", "detail"),
        [
            (0, "query parameter 'limit': 0 is less than the minimum of 1"),
            (501, "query parameter 'limit': 501 is greater than the maximum of 500"),
        ],
    )
    def test_limit_out_of_range_gives_400(
        self, client: SignedClient, limit: int, detail: str
    ) -> None:
        assert_problem(client.get("/api/heroes", params={"limit": limit}), 400, detail, "limit")

    @pytest.mark.parametrize("cursor", ["MA", "LTE", "eA", "MDE", "!!", "a" * 65])
    def test_malformed_cursor_gives_400(self, client: SignedClient, cursor: str) -> None:
        response = client.get("/api/heroes", params={"cursor": cursor})

        assert response.status_code == 400
        assert response.json()["field"] == "cursor"
        assert response.json()["type"] == "/problems/invalid-request"

    def test_unknown_query_parameter_gives_400(self, client: SignedClient) -> None:
        response = client.get("/api/heroes", params={"sort": "name"})

        assert_problem(response, 400, "unknown query parameter(s): sort", "sort")

    def test_nul_in_name_filter_gives_400(self, client: SignedClient) -> None:
        response = client.get("/api/heroes", params={"name": "a\u0000b"})

        assert response.status_code == 400
        assert response.json()["field"] == "name"


class TestListTeams:
    def test_pages_cover_every_team_once(self, client: SignedClient) -> None:
        ids = [
            client.post("/api/teams", json={"name": f"T{n}", "headquarters": "H"}).json()["id"]
            for n in range(5)
        ]

        assert all_pages(client, "/api/teams", limit=2) == [ids[0:2], ids[2:4], ids[4:5]]


def test_cursor_round_trips_any_64_bit_id() -> None:
    for last_id in (1, 12, 2**31, 2**63 - 1):
        assert decode_cursor(encode_cursor(last_id)) == last_id


def test_paging_while_heroes_are_inserted_has_no_duplicates_or_gaps(
    pg_client: SignedClient,
) -> None:
    existing = add_heroes(pg_client, 30)
    stop = threading.Event()

    def keep_inserting() -> None:
        while not stop.is_set():
            pg_client.post("/api/heroes", json={"name": "Newcomer", "secret_name": "s"})

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        seen = [
            hero_id for page in all_pages(pg_client, "/api/heroes", limit=4) for hero_id in page
        ]
    finally:
        stop.set()
        writer.join()

    assert len(seen) == len(set(seen)), "a hero appeared on two pages"
    assert seen == sorted(seen)
    assert set(existing) <= set(seen), "a hero that existed before paging was skipped"
