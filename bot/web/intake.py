"""What a messenger's webhook answers (bot/conversation/intake.py): 401 without its secret;
200 once its update is handled and acknowledged, 503 otherwise (the messenger delivers it
again)."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.conversation.receipts import Receipt


def refused(
    request: web.Request, header: str, secret: str, log: logging.Logger, warning: str
) -> web.Response | None:
    """401 unless the request carries `secret` in `header` (compared in constant time);
    `warning` goes to the front end's `log`. None: the secret is right."""
    given = request.headers.get(header, "").encode()
    if hmac.compare_digest(given, secret.encode()):
        return None
    log.warning(warning)
    return web.json_response({"error": "unauthorized"}, status=401)


def webhook_answer(receipt: Receipt | None) -> web.Response:
    """`receipt`: None when the endpoint was stopping and did not take the update."""
    if receipt is None:
        return web.json_response({"error": "stopping"}, status=503)
    if receipt.acknowledged:
        return web.json_response({})
    return web.json_response({"error": "not handled, deliver again"}, status=503)
