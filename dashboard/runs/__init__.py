"""The run engine: every vendor call a user asks for becomes a Run, sent at most once."""
