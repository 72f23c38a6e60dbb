"""``llmops serve``: one HTTP API (and the web page and Slack adapter on it) over the same entry points as the CLI.

``options`` (what a serve process is told: keys, limits, CORS, Slack), ``service`` (one workspace per process, made
safe for concurrent requests), ``app`` (the FastAPI routes, error mapping, auth and limits), ``slack`` (Slack's events
and slash commands, signatures verified). FastAPI and uvicorn are imported only here, never by ``llmops --help``.
"""
