"""Teams: every operation's success and every declared error, on PostgreSQL and SQLite."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.problem_assertions import assert_problem
from tests.signed_client import SignedClient

PREVENTERS = {"name": "Preventers", "headquarters": "Sharp Tower"}


def create_team(client: SignedClient, **fields: str) -> dict[str, object]:
    response = client.post("/api/teams", json=PREVENTERS | fields)
    assert response.status_code == 201, response.text
    return response.json()


class TestCreateTeam:
    def test_created_team_is_returned_with_location_and_etag(self, client: SignedClient) -> None:
        response = client.post("/api/teams", json=PREVENTERS)

        assert response.status_code == 201
        team = response.json()
        assert team == {
            "id": team["id"],
            "name": "Preventers",
            "headquarters": "Sharp Tower",
            "created_at": team["created_at"],
            "updated_at": team["created_at"],
        }
        assert team["created_at"].endswith("Z")
        assert response.headers["location"] == f"/api/teams/{team['id']}"
        assert response.headers["etag"] == '"1"'
        assert response.headers["content-type"] == "application/json"

    def test_duplicate_name_is_refused_with_409(self, client: SignedClient) -> None:
        create_team(client)

        response = client.post(
            "/api/teams", json={"name": "Preventers", "headquarters": "Elsewhere"}
        )

        assert_problem(response, 409, "a team named 'Preventers' already exists (team 1)", "name")
        assert len(client.get("/api/teams").json()["items"]) == 1

    def test_missing_name_is_refused_with_400_naming_the_field(self, client: SignedClient) -> None:
        response = client.post("/api/teams", json={"headquarters": "Sharp Tower"})

        assert_problem(response, 400, "'name': 'name' is a required property", "name")

    def test_unknown_property_is_refused_with_400(self, client: SignedClient) -> None:
        response = client.post("/api/teams", json=PREVENTERS | {"motto": "x"})

        assert_problem(
            response,
            400,
            "'motto': Additional properties are not allowed ('motto' was unexpected)",
            "motto",
        )

    def test_overlong_headquarters_is_refused_with_400(self, client: SignedClient) -> None:
        response = client.post("/api/teams", json=PREVENTERS | {"headquarters": "x" * 201})

        assert response.status_code == 400
        assert response.json()["field"] == "headquarters"
        assert "is too long" in response.json()["detail"]

    def test_non_json_body_is_refused_with_415(self, client: SignedClient) -> None:
        response = client.post(
            "/api/teams", content=b"name=x", headers={"Content-Type": "text/plain"}
        )

        assert_problem(
            response, 415, "Invalid Content-type (text/plain), expected ['application/json']"
        )


class TestGetTeam:
    def test_team_is_returned_with_its_etag(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.get(f"/api/teams/{team['id']}")

        assert response.status_code == 200
        assert response.json() == team
        assert response.headers["etag"] == '"1"'

    def test_matching_if_none_match_gives_304_without_body(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.get(f"/api/teams/{team['id']}", headers={"If-None-Match": '"1"'})

        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == '"1"'

    def test_weak_or_listed_if_none_match_also_gives_304(self, client: SignedClient) -> None:
        team = create_team(client)

        for header in ('W/"1"', '"7", "1"', "*"):
            response = client.get(f"/api/teams/{team['id']}", headers={"If-None-Match": header})
            assert response.status_code == 304, header

    def test_stale_if_none_match_gives_the_team(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.get(f"/api/teams/{team['id']}", headers={"If-None-Match": '"0"'})

        assert response.status_code == 200
        assert response.json() == team

    def test_unknown_team_gives_404(self, client: SignedClient) -> None:
        assert_problem(client.get("/api/teams/999"), 404, "team 999 does not exist")

    def test_a_non_numeric_id_names_no_resource(self, client: SignedClient) -> None:
        assert_problem(
            client.get("/api/teams/abc"),
            404,
            "no resource at /api/teams/abc: team_id is an integer written in 1 to 19 ASCII digits",
            "team_id",
        )

    def test_id_beyond_64_bits_gives_400(self, client: SignedClient) -> None:
        response = client.get(f"/api/teams/{2**63}")

        assert response.status_code == 400
        assert response.json()["field"] == "team_id"


class TestUpdateTeam:
    def test_merge_patch_changes_only_given_fields(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.patch(
            f"/api/teams/{team['id']}",
            content=b'{"headquarters": "Sister Margaret\'s Bar"}',
            headers={"Content-Type": "application/merge-patch+json"},
        )

        assert response.status_code == 200
        updated = response.json()
        assert updated["name"] == "Preventers"
        assert updated["headquarters"] == "Sister Margaret's Bar"
        assert updated["updated_at"] >= team["updated_at"]
        assert response.headers["etag"] == '"2"'

    def test_plain_json_patch_is_accepted(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.patch(f"/api/teams/{team['id']}", json={"name": "Z-Force"})

        assert response.status_code == 200
        assert response.json()["name"] == "Z-Force"

    def test_matching_if_match_applies_the_change(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.patch(
            f"/api/teams/{team['id']}", json={"name": "Z-Force"}, headers={"If-Match": '"1"'}
        )

        assert response.status_code == 200
        assert response.headers["etag"] == '"2"'

    def test_stale_if_match_gives_412_and_changes_nothing(self, client: SignedClient) -> None:
        team = create_team(client)
        client.patch(f"/api/teams/{team['id']}", json={"name": "Z-Force"})

        response = client.patch(
            f"/api/teams/{team['id']}", json={"name": "Avengers"}, headers={"If-Match": '"1"'}
        )

        assert_problem(response, 412, f'team {team["id"]} has changed: its ETag is now "2"')
        assert client.get(f"/api/teams/{team['id']}").json()["name"] == "Z-Force"

    def test_weak_if_match_never_matches(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.patch(
            f"/api/teams/{team['id']}", json={"name": "Z-Force"}, headers={"If-Match": 'W/"1"'}
        )

        assert response.status_code == 412

    def test_renaming_to_an_existing_name_gives_409(self, client: SignedClient) -> None:
        create_team(client)
        other = create_team(client, name="Z-Force")

        response = client.patch(f"/api/teams/{other['id']}", json={"name": "preventers "})

        assert_problem(response, 409, "a team named 'Preventers' already exists (team 1)", "name")

    def test_empty_patch_changes_nothing(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.patch(f"/api/teams/{team['id']}", json={})

        assert response.status_code == 200
        assert response.json() == team
        assert response.headers["etag"] == '"1"'

    def test_null_name_is_refused_with_400(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.patch(f"/api/teams/{team['id']}", json={"name": None})

        assert_problem(response, 400, "'name': None is not of type 'string'", "name")

    def test_unknown_team_gives_404(self, client: SignedClient) -> None:
        response = client.patch("/api/teams/999", json={"name": "x"})

        assert_problem(response, 404, "team 999 does not exist")


class TestDeleteTeam:
    def test_deleted_team_is_gone(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.delete(f"/api/teams/{team['id']}")

        assert response.status_code == 204
        assert response.content == b""
        assert client.get(f"/api/teams/{team['id']}").status_code == 404

    def test_the_id_of_the_latest_deleted_team_is_never_given_again(
        self, client: SignedClient
    ) -> None:
        create_team(client, name="Z-Force")
        latest = create_team(client)
        client.delete(f"/api/teams/{latest['id']}")

        created = create_team(client)

        assert isinstance(created["id"], int)
        assert isinstance(latest["id"], int)
        assert created["id"] > latest["id"]

    def test_deleting_a_team_unassigns_its_heroes(self, client: SignedClient) -> None:
        team = create_team(client)
        hero = client.post(
            "/api/heroes", json={"name": "Rusty-Man", "secret_name": "Tommy", "team_id": team["id"]}
        ).json()

        client.delete(f"/api/teams/{team['id']}")

        response = client.get(f"/api/heroes/{hero['id']}")
        assert response.json()["team_id"] is None
        assert response.headers["etag"] == '"2"'

    def test_stale_if_match_gives_412_and_keeps_the_team(self, client: SignedClient) -> None:
        team = create_team(client)

        response = client.delete(f"/api/teams/{team['id']}", headers={"If-Match": '"5"'})

        assert_problem(response, 412, f'team {team["id"]} has changed: its ETag is now "1"')
        assert client.get(f"/api/teams/{team['id']}").status_code == 200

    def test_unknown_team_gives_404(self, client: SignedClient) -> None:
        assert_problem(client.delete("/api/teams/999"), 404, "team 999 does not exist")


class TestListTeamHeroes:
    def test_only_the_teams_heroes_are_listed(self, client: SignedClient) -> None:
        team = create_team(client)
        other = create_team(client, name="Z-Force")
        for name, team_id in [("A", team["id"]), ("B", other["id"]), ("C", team["id"])]:
            client.post("/api/heroes", json={"name": name, "secret_name": "s", "team_id": team_id})

        response = client.get(f"/api/teams/{team['id']}/heroes")

        assert response.status_code == 200
        assert [hero["name"] for hero in response.json()["items"]] == ["A", "C"]
        assert response.json()["next_cursor"] is None

    def test_unknown_team_gives_404(self, client: SignedClient) -> None:
        assert_problem(client.get("/api/teams/999/heroes"), 404, "team 999 does not exist")


def _spellings_of(name: str) -> st.SearchStrategy[str]:
    """`name` as people may type it again: other case, white space around it or doubled
    inside, full-width letters (the same after NFKC)."""
    space = st.sampled_from([" ", "  ", "\t", "\u3000", "\u00a0"])
    cased = st.sampled_from([name.upper(), name.lower(), name.swapcase(), name.title()])
    wide = st.just("".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name))
    doubled = st.just(name.replace(" ", "  "))
    return st.builds(
        lambda before, core, after: before + core + after,
        st.one_of(st.just(""), space),
        st.one_of(cased, wide, doubled),
        st.one_of(st.just(""), space),
    )


# Each example's name is its own (the database is cleaned once per test, not per example).
EXAMPLES = itertools.count()
words = st.text(st.characters(codec="ascii", categories=["L", "Nd"]), min_size=1, max_size=12)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), first=words, second=words)
def test_a_team_name_typed_again_in_any_case_spacing_or_width_is_taken(
    client: SignedClient, data: st.DataObject, first: str, second: str
) -> None:
    name = f"{first} {second} {next(EXAMPLES)}"
    created = client.post("/api/teams", json={"name": name, "headquarters": "HQ"})
    assert created.status_code == 201, created.text
    again = data.draw(_spellings_of(name), label="again")

    response = client.post("/api/teams", json={"name": again, "headquarters": "Elsewhere"})

    assert_problem(
        response,
        409,
        f"a team named {name!r} already exists (team {created.json()['id']})",
        "name",
    )


class TestTeamNamesAsPeopleReadThem:
    def test_a_name_is_stored_without_the_white_space_around_it(self, client: SignedClient) -> None:
        team = create_team(client, name="\u3000 Avengers \t")

        assert team["name"] == "Avengers"
        assert client.get(f"/api/teams/{team['id']}").json()["name"] == "Avengers"

    @pytest.mark.parametrize("blank", [" ", "\t\n", "\u3000", "\u00a0\u2003", "\ufeff"])
    def test_a_name_of_white_space_only_is_refused_with_400(
        self, client: SignedClient, blank: str
    ) -> None:
        response = client.post("/api/teams", json={"name": blank, "headquarters": "HQ"})

        assert response.status_code == 400, response.text
        assert response.json()["field"] == "name"

    def test_a_team_may_be_renamed_to_another_spelling_of_its_own_name(
        self, client: SignedClient
    ) -> None:
        team = create_team(client, name="Avengers")

        response = client.patch(f"/api/teams/{team['id']}", json={"name": "AVENGERS "})

        assert response.status_code == 200, response.text
        assert response.json()["name"] == "AVENGERS"

    def test_two_teams_of_different_names_that_share_a_prefix_both_exist(
        self, client: SignedClient
    ) -> None:
        create_team(client, name="Avengers")

        assert (
            client.post(
                "/api/teams", json={"name": "Avengers Academy", "headquarters": "HQ"}
            ).status_code
            == 201
        )
