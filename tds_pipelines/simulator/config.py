"""The simulator's settings: one dataclass, from keyword arguments or from the `tds simulator` flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Iraq: the simulated organization's zone, written the way Zoho writes offsets (no colon).
ORG_UTC_OFFSET_SECONDS = 3 * 3600
ORG_UTC_OFFSET = "+0300"

# How an entity's records show their version (SimulatorConfig.version_style); store.version_shape applies it.
VERSION_STYLES = ("timestamp", "date", "none", "list_only")


@dataclass
class SimulatorConfig:
    """Everything that shapes the simulated Zoho organization and its limits.

    Limits set to 0 mean unlimited. Defaults are Zoho's own (a paid plan): the simulator must never be
    gentler than Zoho unless a test asks for it explicitly."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    fixtures_dir: Path | str | None = None
    records: int = 50  # generated records per entity
    entity_records: dict[str, int] = field(default_factory=dict)  # by TDS entity name; overrides `records`
    seed: int = 20240318

    rate_limit_per_minute: int = 100
    daily_limit: int = 10000
    concurrency_limit: int = 10
    fault_rate: float = 0.0  # probability that an API call gets a random fault (of fault_kinds)
    fault_seed: int | None = None  # random faults are reproducible when set
    fault_kinds: tuple[str, ...] = ("500", "503", "malformed")  # what random faults draw from
    random_timeout_seconds: float = 35.0  # delay of a random "timeout" fault, when fault_kinds has it

    webhook_url: str | None = None
    webhook_token: str | None = None  # sent as X-TDS-Token
    webhook_secret: str | None = None  # signs with X-Zoho-Webhook-Signature
    webhook_timeout_seconds: float = 5.0
    # Zoho's lapses under load (webhooks.py; bounds in webhooks.SETTINGS; `POST /admin/webhooks` at run time).
    webhook_duplicate_rate: float = 0.0  # probability a delivery is sent a second time, later
    webhook_duplicate_delay_seconds: float = 1.0  # the copy follows the first attempt within this
    webhook_reorder_window: int = 0  # >= 2: hold deliveries N at a time, send each window shuffled
    webhook_reorder_flush_seconds: float = 1.0  # a partial window is sent at most this long after it began
    webhook_retries: int = 3  # more attempts after a non-2xx answer or a failed connection
    webhook_retry_delay_seconds: float = 1.0  # before the first retry; doubles at each retry
    webhook_retry_max_delay_seconds: float = 60.0
    webhook_seed: int | None = None  # duplicates and shuffles are reproducible; None: `seed`

    client_id: str = "sim-client"
    client_secret: str = "sim-secret"
    refresh_token: str = "sim-refresh"
    organization_id: str = "10234695"

    token_lifetime_seconds: int = 3600
    refresh_limit: int = 10  # access tokens per refresh token per window
    refresh_window_seconds: int = 600
    refresh_block_seconds: int = 900  # how long Zoho keeps refusing once the limit is passed
    refresh_denied_status: int = 200  # Zoho answers "Access Denied" with 200 (sometimes 400)

    # Whether the credit-note list honours last_modified_time (unconfirmed at Zoho: both are producible).
    creditnotes_modified_filter: bool = True
    itemdetails_max_ids: int = 100
    # TDS entity name -> one of VERSION_STYLES (default "timestamp"): how lists and GETs show the times.
    version_style: dict[str, str] = field(default_factory=dict)
    max_timeout_fault_seconds: float = 120.0

    def records_for(self, entity: str, default: int | None = None) -> int:
        """How many records to generate for a TDS entity name."""
        if entity in self.entity_records:
            return max(0, int(self.entity_records[entity]))
        return self.records if default is None else default


def client_environment(url: str, config: SimulatorConfig | None = None) -> dict[str, str]:
    """The ZOHO_* variables that point a TDS client (the Dagster resource, `tds sync`) at a simulator at `url`."""
    config = config or SimulatorConfig()
    return {
        "ZOHO_CLIENT_ID": config.client_id,
        "ZOHO_CLIENT_SECRET": config.client_secret,
        "ZOHO_REFRESH_TOKEN": config.refresh_token,
        "ZOHO_ORGANIZATION_ID": config.organization_id,
        "ZOHO_ACCOUNTS_URL": url,
        "ZOHO_API_URL": url,
    }
