"""Lists every change to `openapi.yaml`, says whom each breaks, and gates the unapproved breaks.

    uv run python -m tools.spec_diff                       # the gate: against the last release
    uv run python -m tools.spec_diff --format markdown     # the same, as a pull-request comment
    uv run python -m tools.spec_diff --base HEAD~1         # any two revisions (--head REV)
    uv run python -m tools.spec_diff --release             # release info.version

Each change is of one kind: it breaks callers on the wire (an old caller's request is refused or
means something else, or a response holds what the old contract ruled out), it breaks generated
clients (code generated from the old contract no longer compiles or parses: a renamed
operationId, component schema, path parameter or tag), or it is compatible. Every change is
listed, descriptions included.
"""

from tools.spec_diff.changes import Change, Kind, diff
from tools.spec_diff.cli import main

__all__ = ["Change", "Kind", "diff", "main"]
