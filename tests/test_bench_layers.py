"""bench.layers: each band holds the samples of its layer itself, counted only inside the layers
before it."""

from pathlib import Path

import pytest

from bench.layers import layers

REQUEST = "Driver.call (bench/cpu.py:1)"
SIGNED = f"{REQUEST};SignatureMiddleware.__call__ (middleware/signature.py:1)"
ROUTED = f"{SIGNED};RoutingMiddleware.__call__ (connexion/middleware/routing.py:1)"
OPERATION = f"{ROUTED};AsyncOperation.__call__ (connexion/apps/asynchronous.py:1)"
HANDLER = f"{OPERATION};get_hero (handlers/heroes.py:1)"


def test_each_band_is_its_own_share_and_a_replay_record_is_not_the_handlers(
    tmp_path: Path,
) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "\n".join(
            [
                f"{REQUEST};AccessMiddleware._record (middleware/access.py:1) 10",
                f"{SIGNED};record_signature (persistence/signatures.py:1) 10",
                f"{ROUTED} 20",
                f"{OPERATION} 20",
                f"{HANDLER} 10",
                f"{HANDLER};fetch (persistence/database.py:1) 30",
                "run (asyncio/runners.py:1) 50",
            ]
        )
    )
    shares = dict(layers(stacks))
    assert list(shares.values()) == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.1, 0.3, 0.1])
