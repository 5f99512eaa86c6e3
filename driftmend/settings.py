"""Typed settings, in one place: the only module that reads the environment.

Every field can be set as ``DRIFTMEND_<FIELD>`` (for example ``DRIFTMEND_HTTP_PORT=9090``);
command-line flags override them. Secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftmend.spec.fields import PositiveDuration

# Tokens that guard actions are at least this long (a generated one is 32 characters).
MIN_TOKEN_LENGTH = 12


class Settings(BaseSettings):
    """The controller's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTMEND_", extra="ignore", populate_by_name=True
    )

    # Where pid files, logs of supervised processes and the SQLite store live.
    state_dir: Path = Path(".driftmend")
    # The SQLite file; defaults to <state_dir>/driftmend.db.
    db_path: Path | None = None
    # A PostgreSQL server for the store instead of the SQLite file (postgresql://user:pw@host/db):
    # replicas of the operator share one record through it, so a new leader sees what the
    # old one began. Secret, since it may hold a password. Unset: SQLite, as embedded.
    store_dsn: SecretStr | None = None
    # The controller's HTTP server: /metrics, the JSON API and the dashboard.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # Reconcile workers: resources are reconciled in parallel, one worker per resource at a time.
    workers: int = Field(default=4, ge=1, le=64)
    # Every resource is reconciled at least this often (seconds), events or not. Exits and
    # health changes are events and come at once; drifts seen only in signals (CPU, memory,
    # connections, queries) are seen within this period.
    resync_period: float = Field(default=1.0, gt=0)
    # A resource in sync has its row and a signal sample written when they change (health,
    # message, spec, a state signal such as container.running), else once per this period:
    # charts get a point, the store is spared a write per resource per resync.
    record_interval: PositiveDuration = 30.0
    # Backoff after a failed fix: base * 2^(failures-1), capped (seconds).
    backoff_base: float = Field(default=1.0, gt=0)
    backoff_cap: float = Field(default=60.0, gt=0)
    # Record plans and run nothing.
    dry_run: bool = False
    # How often the log accumulator reads new lines (seconds).
    log_poll_interval: float = Field(default=0.5, gt=0)
    # The cluster of `runtime: kubernetes` Containers: a kubeconfig file and a context in it.
    # Unset: the in-cluster service account, else $KUBECONFIG, else ~/.kube/config.
    kubeconfig: Path | None = None
    kube_context: str | None = None
    # A metrics.k8s.io server reached directly, not through the API server's aggregation
    # layer (unset: through the API server, where a metrics-server registers itself).
    kube_metrics_url: str | None = None
    # Store retention (store/retention.py): history older than this, or beyond the newest
    # rows of a table, is deleted, so the store has a size ceiling; LLM exchanges, which
    # hold whole prompts, keep fewer rows. Checked every retention_interval.
    retention_age: PositiveDuration = 30 * 86400.0
    retention_rows: int = Field(default=100_000, ge=100)
    retention_llm_rows: int = Field(default=2_000, ge=10)
    retention_interval: PositiveDuration = 600.0
    # Token that dashboard actions (fix, approve, pause) require; reading is open on localhost.
    dashboard_token: SecretStr | None = None
    # The largest request body the dashboard reads (bytes); its actions are small JSON. A
    # larger Content-Length is answered 413 before the body is read, and a chunked body is
    # cut off with 413 when it passes the limit.
    dashboard_max_body: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)

    # MCP server (`driftmend mcp`): outside clients get read tools only unless writes are allowed.
    mcp_allow_writes: bool = False
    # Bearer tokens for the streamable HTTP transport: read scope, write scope, and the
    # approval token that a destructive tool call must carry. Unset: HTTP refuses everything.
    mcp_read_token: SecretStr | None = None
    mcp_write_token: SecretStr | None = None
    mcp_approval_token: SecretStr | None = None
    # External MCP servers whose tools policies may allow as `external.<name>/<tool>`:
    # a JSON list of {"name": ..., "command": [...]} or {"name": ..., "url": ...}, each
    # optionally with "kinds" (the resource kinds its tools may act on; default all),
    # "effects" ({tool: read|reversible|destructive}, over the server's own hints), "env",
    # "headers" and "timeout_s".
    mcp_servers: list[dict[str, object]] = Field(default_factory=list)

    # LLM planners. The Gemini key comes from GEMINI_API_KEY (also read as DRIFTMEND_GEMINI_API_KEY);
    # without it the controller runs on rules alone and says so.
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DRIFTMEND_GEMINI_API_KEY", "GEMINI_API_KEY")
    )
    gemini_model: str = "gemini-2.5-flash"
    # Where the Gemini REST API is (tests point it at a local server speaking the same protocol).
    gemini_base_url: str | None = None
    # An OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp server) and its model and key.
    openai_base_url: str | None = None
    openai_model: str = "llama3.1"
    openai_api_key: SecretStr | None = None
    # Sampling temperature, request timeout (seconds) and retries on 429/5xx, for both.
    llm_temperature: float = Field(default=0.1, ge=0, le=2)
    llm_timeout: float = Field(default=30.0, gt=0)
    llm_retries: int = Field(default=3, ge=0, le=10)
    # Recorded plans for the replay planner (tests, evals): a JSON file.
    replay_file: Path | None = None

    # A shared daily cap on LLM tokens, over every resource (each policy also has its own
    # per-resource cap, `escalate.tokenBudgetPerDay`). Over it, escalations wait for an operator.
    llm_tokens_per_day: int = Field(default=2_000_000, ge=1000)
    # The most output tokens one model answer may use (a plan is a few function calls).
    llm_max_output_tokens: int = Field(default=2048, ge=64, le=65536)
    # An escalation (every turn, retries included) ends by this deadline (seconds); the
    # resource then waits for an operator. It holds a worker while it runs.
    llm_deadline: float = Field(default=120.0, gt=0)

    # The Lease (coordination.k8s.io/v1) the replicas compete for, in the operator's own
    # namespace (POD_NAMESPACE from the downward API), and this replica's name on it (POD_NAME;
    # unset: host name plus a random suffix).
    leader_lease_name: str = "driftmend-leader"
    leader_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("DRIFTMEND_LEADER_NAMESPACE", "POD_NAMESPACE"),
    )
    leader_identity: str | None = Field(
        default=None, validation_alias=AliasChoices("DRIFTMEND_LEADER_IDENTITY", "POD_NAME")
    )
    # Leader election (`driftmend operator`, two or more replicas): how long a lease holds
    # without renewal before a standby may take it, how long the leader keeps acting without a
    # successful renewal, and how often both try (seconds). A standby takes over a dead
    # leader within about lease_duration + retry_period. Needs retry_period < renew_deadline
    # < lease_duration, so a leader that cannot renew stops before anyone may take over.
    leader_lease_duration: float = Field(default=4.0, gt=0)
    leader_renew_deadline: float = Field(default=3.0, gt=0)
    leader_retry_period: float = Field(default=1.0, gt=0)

    @field_validator("leader_renew_deadline")
    @classmethod
    def _renew_before_expiry(cls, value: float, info: ValidationInfo) -> float:
        lease = info.data.get("leader_lease_duration")
        if lease is not None and value >= lease:
            raise ValueError(
                f"must be shorter than leader_lease_duration ({lease}s): a leader that cannot "
                "renew must stop acting before a standby may take the lease over"
            )
        return value

    @field_validator("leader_retry_period")
    @classmethod
    def _retry_before_deadline(cls, value: float, info: ValidationInfo) -> float:
        deadline = info.data.get("leader_renew_deadline")
        if deadline is not None and value >= deadline:
            raise ValueError(
                f"must be shorter than leader_renew_deadline ({deadline}s): the leader must "
                "get at least one more try at renewing before its deadline"
            )
        return value

    @field_validator(
        "gemini_api_key", "openai_api_key", "dashboard_token", "mcp_read_token",
        "mcp_write_token", "mcp_approval_token", "store_dsn", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `DRIFTMEND_MCP_APPROVAL_TOKEN=` must mean "none", never "the empty string matches".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("dashboard_token", "mcp_read_token", "mcp_write_token", "mcp_approval_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"a token of fewer than {MIN_TOKEN_LENGTH} characters is too easy to guess; "
                "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
        return value

    @property
    def store_path(self) -> Path:
        """The SQLite file in use (unless ``store_dsn`` names a PostgreSQL server)."""
        return self.db_path or self.state_dir / "driftmend.db"
