"""The Telegram sender of the notification dispatcher: sends the Telegram outbox within
Telegram's limits.

A background task of the bot process (`python -m bot`), or a process of its own
(`python -m bot dispatcher`); several may share one database. Overall at most NOTIFY_RATE
messages a second, at most one a second per chat, in order per chat (services/outbox.py does
the claiming, pacing and bookkeeping). What Telegram answers decides what happens to a row:

* 429 -> that chat waits retry_after (at most MAX_RETRY_AFTER, 10 minutes); only when 429s come
  for several chats at once (FLOOD_KEYS chats within FLOOD_WINDOW seconds: Telegram's overall
  limit, not a chat's) does every send wait and the rate drop by a fifth, recovering gradually;
* network errors, timeouts, 5xx -> retried with exponential backoff and jitter, failed with the
  reason after the limit;
* 403 (bot blocked, user deactivated) and 400 «chat not found» -> the link is marked blocked and
  the chat's rows are held until the user writes to the bot again;
* any other 4xx -> failed with Telegram's description (a retry would get the same answer).

The process's wiring (the worker's tasks, the digest, the expiry of move requests, the
dispatcher command) is bot/process/dispatcher.py.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.conversation.pushes import PushLimits, PushSender
from bot.screens.screen import Screen
from bot.telegram.flood import flood_errors_raised
from bot.telegram.render import send_screen
from services.outbox import (
    TELEGRAM,
    Blocked,
    Failed,
    Outcome,
    Retry,
    RetryAfter,
    Sent,
    capped_retry_after,
)

log = logging.getLogger(__name__)

PER_CHAT_INTERVAL = 1.0  # seconds between two messages to one chat
UNAUTHORIZED_PAUSE = 60.0  # seconds to wait when Telegram rejects the token
CHAT_GONE = ("chat not found", "user is deactivated", "bot was blocked", "bot was kicked")


class TelegramSender(PushSender[Bot]):
    """Sends a row's push to its chat with the bot, classifying Telegram's answer; NOTIFY_RATE
    overall, a second apart in one chat."""

    channel = TELEGRAM

    def limits(self) -> PushLimits:
        return PushLimits(self.settings.NOTIFY_RATE, per_chat_interval=PER_CHAT_INTERVAL)

    async def deliver(self, chat_id: int, screen: Screen) -> Outcome:
        try:
            # The 429 comes back at once: the worker decides whom it holds back.
            with flood_errors_raised():
                async with asyncio.timeout(self.send_timeout):
                    message_id = await send_screen(self.api, chat_id, screen)
        except TelegramRetryAfter as error:
            seconds = capped_retry_after(error.retry_after)
            return RetryAfter(seconds, f"429: Too Many Requests: retry after {error.retry_after}")
        except TelegramForbiddenError as error:
            return Blocked(f"403: {error.message}")
        except TelegramBadRequest as error:
            if any(reason in error.message.lower() for reason in CHAT_GONE):
                return Blocked(f"400: {error.message}")
            return Failed(f"400: {error.message}")
        except TelegramUnauthorizedError:
            log.error("Telegram rejected BOT_TOKEN; notifications wait")
            return RetryAfter(UNAUTHORIZED_PAUSE, "401: the bot token was rejected", overall=True)
        except TelegramServerError as error:
            return Retry(f"5xx: {error.message}")
        except TelegramNetworkError as error:
            return Retry(f"network: {error.message}")
        except TimeoutError:
            return Retry("network: request timeout")
        except TelegramAPIError as error:
            return Failed(f"{type(error).__name__}: {error.message}")
        return Sent(message_id)
