"""Operations: structured logs (logs.py), health and readiness (health.py), Prometheus metrics
(metrics.py) and their views (views.py). See docs/operations.md."""
