"""The one Settings object. Nothing else in galleryflow reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of galleryflow, read from ``GALLERYFLOW_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="GALLERYFLOW_", extra="ignore")

    # Where things are. Empty means "use the local services that `galleryflow services up` runs".
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    app_id: str = Field(default="galleryflow", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    data_dir: Path = Path(".data")

    # Topics.
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    # Local services (used only when the URLs above are not set).
    local_kafka_port: int = 39092
    local_kafka_controller_port: int = 39093
    local_postgres_port: int = 35432

    # Worker.
    import_batch_size: int = Field(default=500, ge=1)
    import_batch_seconds: float = Field(default=0.2, gt=0)
    normalise_batch_size: int = Field(default=1000, ge=1)
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 15.0
    idle_check_seconds: float = 1.0
    worker_web_port: int = 6066
    consumer_session_timeout_seconds: float = 10.0
    #: Producer request timeout, also how long a batch may wait for a partition leader (chaos tests shorten it).
    kafka_request_timeout_ms: int = Field(default=30_000, ge=1000)
    log_level: str = "INFO"
    log_json: bool = False

    # Limits.
    max_order_bytes: int = 1024 * 1024
    max_order_items: int = 1000

    # Secrets and vendors (Connectors issue).
    secret_key: SecretStr | None = None
    shootproof_client_id: str | None = None
    shootproof_client_secret: SecretStr | None = None
    shootproof_api_url: str = "https://api.shootproof.com/studio"
    shootproof_auth_url: str = "https://auth.shootproof.com"
    shootproof_redirect_uri: str = "http://localhost/galleryflow/oauth/callback"
    # Pic-Time publishes no API: these are placeholders (see connectors/pictime.py).
    pictime_client_id: str | None = None
    pictime_client_secret: SecretStr | None = None
    pictime_api_url: str = "https://api.pic-time.com/v1"
    pictime_auth_url: str = "https://auth.pic-time.com"
    pictime_redirect_uri: str = "http://localhost/galleryflow/oauth/callback"
    # Polling linked accounts (connectors/scheduler.py, `galleryflow poll`).
    poll_interval_seconds: float = Field(default=300.0, gt=0)
    poll_recent_window_days: int = Field(default=30, ge=0)
    poll_page_rows: int = Field(default=100, ge=1, le=500)
    token_refresh_margin_seconds: float = Field(default=60.0, ge=0)
    connector_http_timeout_seconds: float = Field(default=30.0, gt=0)
    connector_max_attempts: int = Field(default=6, ge=1)
    connector_retry_initial_seconds: float = Field(default=1.0, ge=0)
    connector_retry_max_seconds: float = Field(default=120.0, ge=0)

    def topic(self, name: str) -> str:
        """Full topic name: every topic is namespaced by the app id."""
        return f"{self.app_id}.{name}"

    @property
    def raw_topic(self) -> str:
        return self.topic("orders.raw")

    @property
    def canonical_topic(self) -> str:
        return self.topic("orders.canonical")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    @property
    def committed_topic(self) -> str:
        return self.topic("sales.committed")

    @property
    def consumer_group(self) -> str:
        return self.app_id


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
