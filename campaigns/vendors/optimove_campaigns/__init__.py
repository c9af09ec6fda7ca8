"""Optimove API-triggered campaigns (Smart Campaigns): the HTTP client and its sandbox.

`client.OptimoveCampaignsClient` triggers an Event Generator and polls an execution's status;
`sandbox.OptimoveCampaignsSandbox` is a faithful fake of the vendor served over real HTTP.
"""
