"""The chat post task: a thin caller of chat_webhooks.services.chat_post, with bounded retries."""

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError

from dashboard.chat_webhooks import services

MAX_RETRIES = 4


@shared_task(name="chat_webhooks.post", bind=True, acks_late=True, ignore_result=True)
def chat_post(self, tenant_id: int, target: str, news: dict) -> str:
    outcome = services.chat_post(tenant_id=tenant_id, target=target, news=news)
    if outcome != "retry":
        return outcome
    try:
        # 5 s doubling (5, 10, 20, 40): a receiver that is down for a minute still gets it.
        raise self.retry(countdown=5 * 2**self.request.retries, max_retries=MAX_RETRIES)
    except MaxRetriesExceededError:
        return "failed"
