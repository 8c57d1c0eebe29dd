"""The service's one typed configuration object, read from `APP_*` variables and `.env`."""

import math
from functools import cached_property
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy import URL

# The placeholder shipped in `.env.example`; copying it verbatim must not give a running service.
EXAMPLE_SECRET_KEY = "change-me-to-a-random-secret-of-at-least-32-bytes"  # noqa: S105
# Used only with APP_DEBUG when no key is set, so that the first run needs no configuration.
DEVELOPMENT_SECRET_KEY = "development-only-key-never-use-in-production"  # noqa: S105
# The key of the README's worked example (`signing-vectors.json`): public, so never a real secret.
WORKED_EXAMPLE_SECRET_KEY = "example-signing-key-0123456789abcdef"  # noqa: S105
MIN_SECRET_KEY_BYTES = 32
# What a key must be able to hold (`guessable`): the 32 random bytes of hex keys hold 128.
MIN_KEY_BITS = 96
GENERATE_KEY = """python -c 'import secrets; print(secrets.token_urlsafe(48))'"""
# Long enough for a load balancer checking readiness every second or two to take a replica out.
DEFAULT_LAME_DUCK_SECONDS = 5.0
# Setting any of these selects PostgreSQL; without them the service uses an embedded SQLite file.
POSTGRES_SELECTORS = frozenset({"db_url", "db_host", "db_name", "db_user", "db_password"})
ROOT = Path(__file__).resolve().parent
# Each may instead be read from the file that `APP_<NAME>_FILE` names: Docker secrets and
# Kubernetes Secret volumes mount files, which never show in `env` or `docker inspect`.
SECRET_FILE_SETTINGS = ("secret_key", "secret_key_previous", "db_password")


def guessable(key: bytes) -> str | None:
    """Why `key` is too predictable to sign with, or None; never says what the key is.

    The bound is what a key could hold if each byte were drawn at random from the values it
    uses: 32 bytes of one character hold nothing. Counting distinct bytes alone would refuse
    good keys: a hex key has 16 possible characters, and a quarter of 64-digit random hex keys
    (`openssl rand -hex 32`) miss one of them.
    """
    for period in range(1, len(key) // 2 + 1):
        if key[period:] == key[:-period]:
            return f"it repeats a sequence of {period} bytes"
    distinct = len(set(key))
    bits = len(key) * math.log2(distinct) if distinct > 1 else 0.0
    if bits < MIN_KEY_BITS:
        return (
            f"{len(key)} bytes of only {distinct} distinct values hold at most {bits:.0f} bits; "
            f"{MIN_KEY_BITS} are needed"
        )
    trigrams = {key[i : i + 3] for i in range(len(key) - 2)}
    if len(trigrams) < (len(key) - 2) / 2:
        return "it is mostly repeated sequences"
    return None


def browser_origin(value: str) -> str:
    """`value` as a browser sends it in `Origin` (lower case, no default port, no slash), or
    a ValueError saying how to write it: an origin that never matches would fail silently."""
    if value == "*":
        return value
    example = "write scheme://host[:port], e.g. https://backoffice.example.com"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not an origin: {example}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin (no http:// or https://): {example}")
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an origin (it has more than a host): {example}")
    scheme, host = parts.scheme.lower(), parts.hostname
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="APP_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        # A refused value must not be echoed: the error would print a secret key into the logs.
        hide_input_in_errors=True,
    )

    name: str = "backoffice"
    namespace: str = Field(default="operations", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    db_url: str | None = None
    db_user: str = "postgres"
    db_password: SecretStr = SecretStr("")
    db_host: str = "127.0.0.1"
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = "backoffice"
    # Kept open, and no overflow: SQLAlchemy closes an overflow connection as soon as it is
    # returned, so a burst above the pool size opened and closed a connection per request.
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    db_max_overflow: int = Field(default=0, ge=0, le=1000)
    db_pool_timeout: float = Field(
        default=5.0, gt=0, description="seconds to wait for a free connection"
    )
    db_connect_timeout: float = Field(default=5.0, gt=0, description="seconds to open a connection")
    # Below the request deadline: PostgreSQL ends a slow statement itself, and the connection
    # goes back to the pool; the deadline is for what the server cannot end (a frozen server).
    db_statement_timeout: int = Field(default=5_000, ge=0, description="ms per statement (0: none)")
    # PgBouncer in transaction pooling mode hands each transaction to any server connection:
    # no named prepared statement outlives it, and no setting may ride in the startup packet.
    db_pgbouncer: bool = False
    sqlite_path: Path = Path("var/backoffice.db")

    secret_key: SecretStr | None = None
    secret_key_previous: Annotated[list[SecretStr], NoDecode] = []
    secret_key_file: Path | None = None
    secret_key_previous_file: Path | None = None
    db_password_file: Path | None = None
    timestamp_signing_threshold: int = Field(default=120_000, gt=0, le=3_600_000)
    # An int, not Literal[1, 2]: a Literal never matches the string an environment variable gives.
    signature_min_version: int = Field(default=1, ge=1, le=2)
    replay_protection: Literal["unsafe", "all", "off"] = "unsafe"
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)

    # Below the timeouts of the proxies in front (nginx and AWS's balancers wait 60 s, Envoy 15 s),
    # so that the client gets the service's 503 rather than the proxy's 504.
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="a request is stopped with 503 after this"
    )
    shutdown_grace_seconds: int = Field(default=10, ge=0, description="in-flight requests finish")
    # None: DEFAULT_LAME_DUCK_SECONDS outside development, 0 (exit at once) with APP_DEBUG.
    shutdown_lame_duck_seconds: float | None = Field(
        default=None, ge=0, le=300, description="readiness fails, requests still served"
    )
    idempotency_ttl_seconds: int = Field(
        default=86_400, ge=1, le=30 * 86_400, description="an Idempotency-Key is remembered"
    )
    # Seconds a client may reuse a single resource without asking again; 0 (the default): it
    # may keep it, but revalidates with its ETag each time. Lists and errors are never stored.
    cache_max_age: int = Field(default=0, ge=0, le=86_400)
    cors_origins: Annotated[list[str], NoDecode] = []
    # What the HTTP server accepts from a client (server/protocol.py says why each).
    max_header_bytes: int = Field(default=32_768, ge=4096, le=1_048_576)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    keep_alive_seconds: int = Field(default=5, ge=1, le=3600)
    limit_concurrency: int = Field(default=1000, ge=1, le=100_000)
    # Peers whose X-Forwarded-For/-Proto are believed (the proxy in front): none by default,
    # so that no client can write the address that the logs show.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = []
    # Lets a browser send cookies (a gateway's SSO session) with its calls: only with origins
    # named in APP_CORS_ORIGINS, never with "*".
    cors_allow_credentials: bool = False
    validate_responses: bool = False

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        values = dict(data)  # type: ignore[arg-type]
        for name in SECRET_FILE_SETTINGS:
            path = values.get(f"{name}_file")
            if not path:
                continue
            variable = f"APP_{name.upper()}"
            if values.get(name):
                raise ValueError(f"set {variable} or {variable}_FILE, not both")
            try:
                # Editors and `echo` end a file with a newline that is no part of the secret.
                secret = Path(path).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ValueError(f"{variable}_FILE: cannot read {path}: {error.strerror}") from None
            if secret:
                values[name] = secret
        return values

    @field_validator("secret_key_previous", "cors_origins", "forwarded_allow_ips", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("cors_origins", mode="after")
    @classmethod
    def _browser_origins(cls, origins: list[str]) -> list[str]:
        return list(dict.fromkeys(browser_origin(origin) for origin in origins))

    @field_validator("forwarded_allow_ips", mode="after")
    @classmethod
    def _addresses(cls, peers: list[str]) -> list[str]:
        for peer in peers:
            if peer == "*":
                continue
            try:
                ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(
                    f"{peer!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
                ) from None
        return peers

    @model_validator(mode="after")
    def _credentials_need_named_origins(self) -> Self:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError(
                "APP_CORS_ALLOW_CREDENTIALS=true needs APP_CORS_ORIGINS to name each origin, "
                "not *: any site could otherwise call the API with the user's cookies"
            )
        return self

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Self:
        if self.debug:
            return self
        if self.secret_key is None:
            raise ValueError(
                "APP_SECRET_KEY is not set: set it to a random secret of at least "
                f"{MIN_SECRET_KEY_BYTES} bytes (or set APP_DEBUG=true for local development)"
            )
        for variable, key in [("APP_SECRET_KEY", self.secret_key)] + [
            ("APP_SECRET_KEY_PREVIOUS", key) for key in self.secret_key_previous
        ]:
            value = key.get_secret_value()
            if value in (EXAMPLE_SECRET_KEY, DEVELOPMENT_SECRET_KEY, WORKED_EXAMPLE_SECRET_KEY):
                raise ValueError(f"{variable} is the example value: generate a real secret")
            if len(value.encode()) < MIN_SECRET_KEY_BYTES:
                raise ValueError(f"{variable} is shorter than {MIN_SECRET_KEY_BYTES} bytes")
            if weakness := guessable(value.encode()):
                raise ValueError(
                    f"{variable} is too predictable for a key ({weakness}): generate one with "
                    f"{GENERATE_KEY}"
                )
        current = self.secret_key.get_secret_value()
        previous = [key.get_secret_value() for key in self.secret_key_previous]
        if current in previous:
            raise ValueError(
                "APP_SECRET_KEY_PREVIOUS repeats APP_SECRET_KEY: list only the keys that are no "
                "longer current"
            )
        if len(set(previous)) != len(previous):
            raise ValueError("APP_SECRET_KEY_PREVIOUS lists the same key twice")
        return self

    @property
    def uses_postgres(self) -> bool:
        return bool(POSTGRES_SELECTORS & self.model_fields_set)

    @property
    def database_source(self) -> str:
        """The variables that chose the database, as a user would look for them."""
        if self.db_url:
            return "APP_DB_URL"
        if self.uses_postgres:
            parts = ("db_host", "db_port", "db_name", "db_user", "db_password")
            return ", ".join(f"APP_{n.upper()}" for n in parts if n in self.model_fields_set)
        return "APP_SQLITE_PATH"

    @cached_property
    def database_url(self) -> "URL":
        # Imported here: `backoffice call` and `--help` load settings but never a database.
        from sqlalchemy import URL, make_url

        if self.db_url:
            url = make_url(self.db_url)
            if url.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
                url = url.set(drivername="postgresql+asyncpg")
            return url
        if self.uses_postgres:
            return URL.create(
                "postgresql+asyncpg",
                username=self.db_user,
                password=self.db_password.get_secret_value() or None,
                host=self.db_host,
                port=self.db_port,
                database=self.db_name,
            )
        path = self.sqlite_path if self.sqlite_path.is_absolute() else Path.cwd() / self.sqlite_path
        return URL.create("sqlite+aiosqlite", database=str(path))

    @property
    def lame_duck_seconds(self) -> float:
        if self.shutdown_lame_duck_seconds is not None:
            return self.shutdown_lame_duck_seconds
        return 0.0 if self.debug else DEFAULT_LAME_DUCK_SECONDS

    @property
    def signing_key(self) -> bytes:
        key = self.secret_key.get_secret_value() if self.secret_key else DEVELOPMENT_SECRET_KEY
        return key.encode()

    @property
    def verification_keys(self) -> tuple[bytes, ...]:
        previous = (key.get_secret_value().encode() for key in self.secret_key_previous)
        return (self.signing_key, *previous)


class DatabaseSettings(Settings):
    """The same settings, for tools that only touch the database (migrations, demo data): they
    neither sign nor verify, so they need no APP_SECRET_KEY."""

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Self:
        return self
