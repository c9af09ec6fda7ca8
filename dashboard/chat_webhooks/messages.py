"""What a chat post looks like: Slack-compatible incoming-webhook JSON, and a Microsoft Teams
message with an Adaptive Card. Built from a "news" dict (chat_webhooks.services.ChatNews) that
holds only what a person may read in a channel: never a secret nor a one-time token."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def headline(news: dict[str, Any]) -> str:
    """One line saying what happened, e.g. "Approval needed: Run #12: Daily trigger"."""
    event = news.get("event")
    title = news.get("title", "")
    who = news.get("who", "")
    if event == "requested":
        return _("Approval needed: %(title)s (asked by %(who)s)") % {"title": title, "who": who}
    if event == "approved":
        return _("Approved by %(who)s: %(title)s") % {"title": title, "who": who}
    if event == "rejected":
        return _("Rejected by %(who)s: %(title)s") % {"title": title, "who": who}
    if event == "expired":
        return _("Expired unapproved: %(title)s") % {"title": title}
    return _("TriggerDesk test message for %(tenant)s: approval news will be posted here.") % {
        "tenant": news.get("tenant", "")
    }


def _facts(news: dict[str, Any]) -> list[tuple[str, str]]:
    facts = [(_("Tenant"), str(news.get("tenant", "")))]
    if news.get("what"):
        facts.append((_("What"), str(news["what"])))
    if news.get("reasons"):
        facts.append((_("Why approval is needed"), "; ".join(map(str, news["reasons"]))))
    if news.get("comment"):
        facts.append((_("Comment"), str(news["comment"])))
    return facts


def slack_payload(news: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (what every compatible receiver shows) and
    Block Kit blocks with the facts and a button to the request's page."""
    text = headline(news)
    lines = "\n".join(f"*{label}:* {value}" for label, value in _facts(news))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
    ]
    if news.get("link"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": _("Open the request")},
                        "url": news["link"],
                    }
                ],
            }
        )
        text = f"{text} {news['link']}"
    return {"text": text, "blocks": blocks}


def teams_payload(news: dict[str, Any]) -> dict[str, Any]:
    """A Teams incoming-webhook (or Workflows) message carrying one Adaptive Card."""
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": headline(news), "weight": "Bolder", "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": label, "value": value} for label, value in _facts(news)],
            },
        ],
    }
    if news.get("link"):
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": _("Open the request"), "url": news["link"]}
        ]
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }


PAYLOADS = {"slack": slack_payload, "teams": teams_payload}
