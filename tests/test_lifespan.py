"""Start-up and shutdown of the app's lifespan, as uvicorn drives it."""

import gc

from starlette.testclient import TestClient

from app import create_app
from settings import Settings


def test_the_objects_built_at_start_up_are_kept_out_of_the_collector_while_serving(
    backend_settings: dict[str, Settings],
) -> None:
    # Otherwise each full collection walks the parsed spec and routes again: a 50-90 ms pause.
    with TestClient(create_app(backend_settings["postgresql"])) as client:
        assert gc.get_freeze_count() > 10_000
        assert client.get("/health/live").status_code == 200
    assert gc.get_freeze_count() == 0
