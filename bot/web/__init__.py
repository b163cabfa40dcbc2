"""The web server (aiohttp): /healthz and /metrics (server.py, metrics.py), the integration API
(api/), the decisions webhook to the module (decisions_webhook.py), the bot-first sign-in pages
(oidc.py, oidc_client.py), the messenger webhooks' answers (intake.py). Messenger-neutral:
nothing here imports aiogram."""
