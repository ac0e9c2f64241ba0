"""`reliactl serve`: the dashboard, /healthz, /metrics and the JSON API (issue 18).

``core`` runs the check rounds and builds the documents (no web library); ``metrics`` is the
prometheus_client collector; ``app`` is the Starlette application. Only ``reliactl serve``
imports this package: `run` and `health` never load starlette, uvicorn or prometheus_client.
"""
