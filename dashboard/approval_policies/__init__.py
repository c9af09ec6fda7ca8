"""Approval policies: which requests need approval, from how many operators, for how long.

Per tenant and operation: "an Altcraft launch above 50,000 recipients", "an event-generator
trigger to more than 20 topics", "anything outside office hours". evaluation.py decides, from a
request's facts, which policies apply (pure); services.py keeps the policies (audited); the run
engine asks decide() when a run is requested and counts approvals against its verdict.
"""
