"""Tenant chat webhooks (issue 25, item 4): approval requests and their outcomes posted to a
Slack-compatible incoming webhook and/or a Microsoft Teams webhook (an Adaptive Card).

The URLs are secrets (whoever holds one can post into the channel): stored encrypted like the
connections' secrets, shown as a hint only, never logged. Posting is a Celery task started after
the commit, with bounded retries; a failing webhook never blocks or fails an approval. A post
never carries a secret nor a one-time approval token: it links to the request's own page.
"""
