"""A throwaway PostgreSQL cluster, for machines with no server running (and for outage tests)."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Generator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class PrivateCluster:
    """initdb + pg_ctl in a temporary directory; as root, run as the `postgres` user."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="backoffice-pg-"))
        self.data = self.directory / "data"
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER", "postgres")

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def init(self, *, password: str | None = None) -> "PrivateCluster":
        """With `password`, every login must give it (scram-sha-256) instead of being trusted."""
        authentication = ["-A", "trust"]
        if password is not None:
            password_file = self.directory / "password"
            password_file.write_text(password)
            if self._as_postgres:
                shutil.chown(password_file, "postgres", "postgres")
            authentication = ["-A", "scram-sha-256", f"--pwfile={password_file}"]
        self._run("initdb", "-D", str(self.data), "-U", self.user, *authentication, "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(*, password: str | None = None) -> Generator[PrivateCluster]:
    """A started private cluster, destroyed afterwards: what each test module's fixture yields."""
    cluster = PrivateCluster().init(password=password)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
