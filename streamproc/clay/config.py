"""What Clay mode reads of the settings, taken once: :class:`ClayConfig`.

The parts of :mod:`streamproc.clay` are handed this small frozen object, not the whole
:class:`~streamproc.settings.Settings` (every secret of the process included): a reader
sees what each part depends on, and a test builds one without the 100 other fields. The
settings stay the one flat environment surface; each field's meaning is the description
of the setting it comes from (``clay_<name>``, unless said).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from streamproc.kafka.config import KafkaConnection
from streamproc.provider.config import retry_policy
from streamproc.provider.retry import RetryPolicy
from streamproc.settings import CallbackAuth, Settings

__all__ = ["ClayConfig"]


@dataclass(frozen=True, slots=True)
class ClayConfig:
    """The ``clay_*`` settings, the output topics, the lead's credit estimate, the
    retries and timeout of a webhook POST (the synchronous provider's), and the Kafka
    connection and group of the finisher's transactional producers."""

    webhook_urls: tuple[str, ...]
    webhook_auth_token: SecretStr | None
    webhook_row_limit: int
    webhook_headroom_rows: int
    webhook_alert_ratio: float
    rate_per_s: float
    burst: int
    submit_concurrency: int
    deadline_s: float
    callback_auth: CallbackAuth
    #: None only where nothing receives callbacks (``ClayService`` refuses it).
    callback_secret: SecretStr | None
    callback_auth_header: str
    callback_max_bytes: int
    callback_wait_s: float
    orphan_grace_s: float
    sweep_interval_s: float
    #: ``topic_enriched``, ``topic_dlq``.
    topic_enriched: str
    topic_dlq: str
    #: ``credits_per_lead``: a finished lead's charge when its callback names none.
    credits_per_lead: int
    #: ``provider_max_retries``, ``provider_backoff_*``, ``provider_retry_after_max_s``.
    retry: RetryPolicy
    #: ``provider_timeout_s``: the bound on one webhook POST.
    timeout_s: float
    #: The finisher's producers: their connection, and the group their transactional
    #: ids are under.
    kafka: KafkaConnection
    group_id: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ClayConfig:
        """Clay mode's part of ``settings``."""
        return cls(
            webhook_urls=tuple(str(url) for url in settings.clay_webhook_urls),
            webhook_auth_token=settings.clay_webhook_auth_token,
            webhook_row_limit=settings.clay_webhook_row_limit,
            webhook_headroom_rows=settings.clay_webhook_headroom_rows,
            webhook_alert_ratio=settings.clay_webhook_alert_ratio,
            rate_per_s=settings.clay_rate_per_s,
            burst=settings.clay_burst,
            submit_concurrency=settings.clay_submit_concurrency,
            deadline_s=settings.clay_deadline_s,
            callback_auth=settings.clay_callback_auth,
            callback_secret=settings.clay_callback_secret,
            callback_auth_header=settings.clay_callback_auth_header,
            callback_max_bytes=settings.clay_callback_max_bytes,
            callback_wait_s=settings.clay_callback_wait_s,
            orphan_grace_s=settings.clay_orphan_grace_s,
            sweep_interval_s=settings.clay_sweep_interval_s,
            topic_enriched=settings.topic_enriched,
            topic_dlq=settings.topic_dlq,
            credits_per_lead=settings.credits_per_lead,
            retry=retry_policy(settings),
            timeout_s=settings.provider_timeout_s,
            kafka=KafkaConnection.from_settings(settings),
            group_id=settings.group_id,
        )
