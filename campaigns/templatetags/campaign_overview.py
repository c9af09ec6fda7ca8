"""The campaigns card of the tenant overview: the next scheduled campaigns."""

from django import template

from campaigns.event_generators import selectors

register = template.Library()


@register.inclusion_tag("campaigns/_overview_card.html")
def campaign_overview_card(tenant):
    return {"current_tenant": tenant, **selectors.campaign_overview(tenant=tenant)}
