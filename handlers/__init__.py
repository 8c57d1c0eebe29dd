"""HTTP handlers, one module per resource, bound to `openapi.yaml` by operationId.

The spec's operationIds are the names generated clients call (`listHeroes`, `createHero`), so
they say nothing of Python: `OPERATIONS` is the one place that ties each to its function, and a
function can be renamed or moved without any client noticing.
"""

from collections.abc import Callable
from typing import Any

from handlers import heroes, ops, teams

OPERATIONS: dict[str, Callable[..., Any]] = {
    "listHeroes": heroes.list_heroes,
    "createHero": heroes.create_hero,
    "getHero": heroes.get_hero,
    "updateHero": heroes.update_hero,
    "deleteHero": heroes.delete_hero,
    "listTeams": teams.list_teams,
    "createTeam": teams.create_team,
    "getTeam": teams.get_team,
    "updateTeam": teams.update_team,
    "deleteTeam": teams.delete_team,
    "getTeamHeroes": teams.list_team_heroes,
    "getLiveness": ops.live,
    "getReadiness": ops.ready,
    "getHealth": ops.health,
    "getMetrics": ops.metrics,
}


def handler_of(operation_id: str) -> Callable[..., Any]:
    """The function that serves `operation_id`; Connexion's resolver asks this at start-up."""
    try:
        return OPERATIONS[operation_id]
    except KeyError:
        raise LookupError(
            f"openapi.yaml names operationId {operation_id!r}, which no handler in "
            "handlers/__init__.py serves"
        ) from None
