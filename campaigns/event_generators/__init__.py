"""Optimove API-triggered campaigns in the browser: event generators with versioned payload
schemas, the schema-driven trigger form, trigger groups (many topics at once), schedules.

Public surface: `models`, `schema` (JSON Schema → form → context), `services` (writes),
`selectors` (reads). Views, the command and the Celery task are thin callers.
"""
