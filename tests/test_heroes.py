"""Heroes: every operation's success and every declared error, on PostgreSQL and SQLite."""

from typing import Any

import pytest

from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient

DEADPOND = {"name": "Deadpond", "secret_name": "Dive Wilson", "age": 30}


def create_team(client: SignedClient, name: str = "Preventers") -> dict[str, Any]:
    response = client.post("/api/teams", json={"name": name, "headquarters": "Sharp Tower"})
    assert response.status_code == 201, response.text
    return response.json()


def create_hero(client: SignedClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/heroes", json=DEADPOND | fields)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreateHero:
    def test_created_hero_is_returned_without_its_secret_name(self, client: SignedClient) -> None:
        response = client.post("/api/heroes", json=DEADPOND)

        assert response.status_code == 201
        hero = response.json()
        assert hero == {
            "id": hero["id"],
            "name": "Deadpond",
            "age": 30,
            "team_id": None,
            "created_at": hero["created_at"],
            "updated_at": hero["created_at"],
        }
        assert response.headers["location"] == f"/api/heroes/{hero['id']}"
        assert response.headers["etag"] == '"1"'

    def test_hero_can_join_an_existing_team(self, client: SignedClient) -> None:
        team = create_team(client)

        hero = create_hero(client, team_id=team["id"])

        assert hero["team_id"] == team["id"]

    def test_age_is_optional(self, client: SignedClient) -> None:
        hero = create_hero(client, age=None)

        assert hero["age"] is None

    def test_missing_team_is_refused_with_409(self, client: SignedClient) -> None:
        response = client.post("/api/heroes", json=DEADPOND | {"team_id": 12345})

        assert_problem(response, 409, "team 12345 does not exist", "team_id")
        assert client.get("/api/heroes").json()["items"] == []

    @pytest.mark.parametrize(
        ("fields", "field", "detail"),
        [
            ({"age": -1}, "age", "'age': -1 is less than the minimum of 0"),
            ({"age": 10001}, "age", "'age': 10001 is greater than the maximum of 10000"),
            ({"age": "30"}, "age", "'age': '30' is not of type 'integer'"),
            ({"name": ""}, "name", "'name': '' should be non-empty"),
            ({"team_id": 0}, "team_id", "'team_id': 0 is less than the minimum of 1"),
            (
                {"team_id": 2**63},
                "team_id",
                f"'team_id': {2**63} is greater than the maximum of {2**63 - 1}",
            ),
            (
                {"secret_name": "a\u0000b"},
                "secret_name",
                "'secret_name': 'a\\x00b' does not match '^[^\\\\u0000]*$'",
            ),
        ],
    )
    def test_out_of_contract_values_are_refused_with_400(
        self, client: SignedClient, fields: dict[str, Any], field: str, detail: str
    ) -> None:
        response = client.post("/api/heroes", json=DEADPOND | fields)

        assert_problem(response, 400, detail, field)

    def test_missing_secret_name_is_refused_with_400(self, client: SignedClient) -> None:
        response = client.post("/api/heroes", json={"name": "Deadpond"})

        assert_problem(
            response, 400, "'secret_name': 'secret_name' is a required property", "secret_name"
        )

    def test_invalid_utf8_body_is_refused_with_400(self, client: SignedClient) -> None:
        body = b'{"name": "Dead\xffpond", "secret_name": "Dive"}'

        response = client.post(
            "/api/heroes", content=body, headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["detail"].startswith("the request body is not valid JSON: ")
        assert "utf-8" in response.json()["detail"].lower()

    def test_lone_surrogate_escape_is_refused_with_400(self, client: SignedClient) -> None:
        body = b'{"name": "Dead\\ud800pond", "secret_name": "Dive"}'

        response = client.post(
            "/api/heroes", content=body, headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["detail"].startswith("the request body is not valid JSON: ")

    def test_malformed_json_is_refused_with_400(self, client: SignedClient) -> None:
        response = client.post(
            "/api/heroes", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["type"] == "/problems/invalid-request"

    def test_empty_body_is_refused_with_400(self, client: SignedClient) -> None:
        response = client.post(
            "/api/heroes", content=b"", headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400
        assert response.json()["type"] == "/problems/invalid-request"

    def test_non_ascii_names_round_trip(self, client: SignedClient) -> None:
        hero = create_hero(client, name="Équipe Zürich 🦸")

        assert client.get(f"/api/heroes/{hero['id']}").json()["name"] == "Équipe Zürich 🦸"


class TestGetHero:
    def test_hero_is_returned_without_its_secret_name(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.get(f"/api/heroes/{hero['id']}")

        assert response.status_code == 200
        assert response.json() == hero
        assert "secret_name" not in response.text
        assert "Dive Wilson" not in response.text

    def test_matching_if_none_match_gives_304(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.get(f"/api/heroes/{hero['id']}", headers={"If-None-Match": '"1"'})

        assert response.status_code == 304
        assert response.content == b""

    def test_changed_hero_no_longer_matches_its_old_etag(self, client: SignedClient) -> None:
        hero = create_hero(client)
        client.patch(f"/api/heroes/{hero['id']}", json={"age": 31})

        response = client.get(f"/api/heroes/{hero['id']}", headers={"If-None-Match": '"1"'})

        assert response.status_code == 200
        assert response.headers["etag"] == '"2"'

    def test_unknown_hero_gives_404(self, client: SignedClient) -> None:
        assert_problem(client.get("/api/heroes/424242"), 404, "hero 424242 does not exist")

    def test_zero_id_gives_400(self, client: SignedClient) -> None:
        response = client.get("/api/heroes/0")

        assert_problem(
            response, 400, "path parameter 'hero_id': 0 is less than the minimum of 1", "hero_id"
        )


class TestUpdateHero:
    def test_merge_patch_sets_given_fields_and_keeps_the_rest(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(
            f"/api/heroes/{hero['id']}",
            content=b'{"age": 31}',
            headers={"Content-Type": "application/merge-patch+json"},
        )

        assert response.status_code == 200
        assert response.json() | {"updated_at": None} == hero | {"age": 31, "updated_at": None}
        assert response.headers["etag"] == '"2"'

    def test_a_patch_sent_as_application_json_is_still_read_as_a_merge_patch(
        self, client: SignedClient
    ) -> None:
        hero = create_hero(client)

        response = client.patch(
            f"/api/heroes/{hero['id']}",
            content=b'{"age": 31}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

        assert response.status_code == 200
        assert response.json()["age"] == 31

    def test_a_patch_of_another_media_type_is_refused_with_415(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(
            f"/api/heroes/{hero['id']}", content=b"age=31", headers={"Content-Type": "text/plain"}
        )

        assert_problem(
            response,
            415,
            "Invalid Content-type (text/plain), expected ['application/merge-patch+json']",
        )

    def test_null_clears_age_and_team(self, client: SignedClient) -> None:
        team = create_team(client)
        hero = create_hero(client, team_id=team["id"])

        response = client.patch(f"/api/heroes/{hero['id']}", json={"age": None, "team_id": None})

        assert response.status_code == 200
        assert response.json()["age"] is None
        assert response.json()["team_id"] is None

    def test_secret_name_can_be_changed_but_is_never_returned(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(f"/api/heroes/{hero['id']}", json={"secret_name": "Wade"})

        assert response.status_code == 200
        assert "secret_name" not in response.json()
        assert response.headers["etag"] == '"2"'

    def test_joining_a_missing_team_gives_409(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(f"/api/heroes/{hero['id']}", json={"team_id": 777})

        assert_problem(response, 409, "team 777 does not exist", "team_id")
        assert client.get(f"/api/heroes/{hero['id']}").json()["team_id"] is None

    def test_stale_if_match_gives_412_and_changes_nothing(self, client: SignedClient) -> None:
        hero = create_hero(client)
        client.patch(f"/api/heroes/{hero['id']}", json={"age": 31})

        response = client.patch(
            f"/api/heroes/{hero['id']}", json={"age": 99}, headers={"If-Match": '"1"'}
        )

        assert_problem(response, 412, f'hero {hero["id"]} has changed: its ETag is now "2"')
        assert client.get(f"/api/heroes/{hero['id']}").json()["age"] == 31

    def test_current_if_match_applies_the_change(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(
            f"/api/heroes/{hero['id']}", json={"age": 99}, headers={"If-Match": '"1"'}
        )

        assert response.status_code == 200
        assert response.json()["age"] == 99

    def test_if_match_star_applies_to_an_existing_hero(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(
            f"/api/heroes/{hero['id']}", json={"age": 40}, headers={"If-Match": "*"}
        )

        assert response.status_code == 200

    def test_unknown_property_is_refused_with_400(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.patch(f"/api/heroes/{hero['id']}", json={"id": 5})

        assert_problem(
            response, 400, "'id': Additional properties are not allowed ('id' was unexpected)", "id"
        )

    def test_unknown_hero_gives_404(self, client: SignedClient) -> None:
        assert_problem(
            client.patch("/api/heroes/31337", json={"age": 1}), 404, "hero 31337 does not exist"
        )


class TestDeleteHero:
    def test_deleted_hero_is_gone(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.delete(f"/api/heroes/{hero['id']}")

        assert response.status_code == 204
        assert_problem(
            client.get(f"/api/heroes/{hero['id']}"), 404, f"hero {hero['id']} does not exist"
        )

    def test_the_id_of_the_latest_deleted_hero_is_never_given_again(
        self, client: SignedClient
    ) -> None:
        create_hero(client)
        latest = create_hero(client)
        client.delete(f"/api/heroes/{latest['id']}")

        created = create_hero(client)

        assert created["id"] > latest["id"]
        assert_problem(
            client.get(f"/api/heroes/{latest['id']}"), 404, f"hero {latest['id']} does not exist"
        )

    def test_stale_if_match_gives_412_and_keeps_the_hero(self, client: SignedClient) -> None:
        hero = create_hero(client)

        response = client.delete(f"/api/heroes/{hero['id']}", headers={"If-Match": '"9"'})

        assert_problem(response, 412, f'hero {hero["id"]} has changed: its ETag is now "1"')
        assert client.get(f"/api/heroes/{hero['id']}").status_code == 200

    def test_deleting_twice_gives_404(self, client: SignedClient) -> None:
        hero = create_hero(client)
        client.delete(f"/api/heroes/{hero['id']}")

        response = client.delete(f"/api/heroes/{hero['id']}")

        assert_problem(response, 404, f"hero {hero['id']} does not exist")
