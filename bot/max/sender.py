"""The outbox's MAX rows sent through MAX's Bot API, within MAX's limits (bot/process/
dispatcher.py runs it beside the Telegram sender, services/outbox.py claims, paces and records).

At most 2 messages a second per dialog (MAX's documented limit: half a second between one
answer and the next request), taking turns with the bot's replies in that dialog (the client's
pacing, bot/max/client.py), overall MAX_NOTIFY_RATE. What MAX answers decides the row:

* 429 -> that dialog waits (MAX documents no Retry-After: a second, or the header's value if
  one comes); several dialogs at once -> every send waits (services/outbox.py's flood rule);
* no answer (a connection error, a timeout), 5xx -> retried with backoff (a timed-out send may
  have arrived: delivery is at least once, as for Telegram);
* 403 (`chat.denied`: the user stopped the bot) or a dialog that is gone -> the binding is
  marked blocked and the dialog's rows are held until the user comes back;
* 401 -> every send waits a minute (the token was rejected);
* any other 4xx -> failed with MAX's code (a retry would get the same answer).
"""

from __future__ import annotations

from bot.conversation.pushes import PushLimits, PushSender
from bot.max.client import MaxClient, MaxError
from bot.max.render import body
from bot.screens.screen import Screen
from services.outbox import Blocked, Failed, Outcome, Retry, RetryAfter, Sent

MAX_CHANNEL = "max"
RATE_LIMITED_WAIT = 1.0  # seconds a dialog waits after a 429 (MAX sends no Retry-After)
UNAUTHORIZED_PAUSE = 60.0


class MaxSender(PushSender[MaxClient]):
    """Sends a row's push to its MAX dialog through the client, classifying MAX's answer;
    MAX_NOTIFY_RATE overall, 2 messages a second per dialog with the replies sent through the
    same client."""

    channel = MAX_CHANNEL

    def limits(self) -> PushLimits:
        return PushLimits(self.settings.MAX_NOTIFY_RATE, pacer=self.api.messages)

    async def deliver(self, chat_id: int, screen: Screen) -> Outcome:
        try:
            await self.api.send(body(screen), chat_id, self.send_timeout)
        except MaxError as error:
            return outcome_of(error)
        return Sent(None)  # MAX's message ids are strings: not kept


def outcome_of(error: MaxError) -> Outcome:
    reason = f"{error.status}: {error.code or error.text}"
    if error.rate_limited:
        return RetryAfter(RATE_LIMITED_WAIT, reason)
    if error.status == 401:
        return RetryAfter(UNAUTHORIZED_PAUSE, "401: the MAX bot token was rejected", overall=True)
    if error.transient:
        return Retry(reason if error.status else f"network: {error.text}")
    if error.chat_gone:
        return Blocked(reason)
    return Failed(reason)
