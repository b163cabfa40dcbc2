"""Carrying out a reply's effects through MAX's Bot API, after the update's commit.

A press is answered once, through POST /answers, first: with the new screen when the pressed
message changes (MAX edits the message by the answer, so a press costs one request), and the
Notice as a one-time notification (MAX has no alert: a refusal is a notification too). An
answer with neither is refused by MAX, so a press that changes nothing visible is answered with
a short notification. A screen shown in place outside a press's answer is an edit
(PUT /messages) that always carries the keyboard; a message that can no longer be edited
(deleted, gone) is replaced by a new one, so a stale button never leads to a dead end.

MAX allows at most 2 messages (sends and edits) and 2 answers a second per dialog: each call
takes its turn in the dialog with the process's pacing (the client's, shared with the pushes of
bot/max/sender.py), so a reply and a push meet no 429 together. A 429 that comes all the same
(a dispatcher of another process wrote to the dialog) is waited out once and the call made
again. Nothing here fails the update: the change is committed by now, and what MAX
refuses is logged (the kind of call and the status only) and passed over. MAX has no per-chat
command menu, so `Commands` has nothing to do here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot import texts
from bot.conversation.effects import (
    ChatExecutor,
    Document,
    Edit,
    Effect,
    Show,
    answer_of,
)
from bot.max.client import MaxClient, MaxError
from bot.max.render import body, file_body
from bot.screens.markup import plain, shorten
from bot.screens.screen import Screen
from services.outbox import ChatPacer

log = logging.getLogger(__name__)

NOTIFICATION_LIMIT = 200  # characters of a notification: a toast, as Telegram's answers
RATE_LIMIT_WAIT = 1.0  # seconds: MAX's per-dialog limits are per second; no Retry-After is sent
ATTACHMENT_NOT_READY = "attachment.not.ready"  # an uploaded file MAX is still processing
ATTACHMENT_WAITS = (1.0, 2.0, 4.0)  # seconds before asking again to send it

T = TypeVar("T")


class MaxExecutor(ChatExecutor[MaxClient, str]):
    """The effects of one update through the MAX client (`api`), in the dialog `chat_id`; a
    press's `callback_id` and `origin` (the pressed message's mid)."""

    refused = (MaxError,)
    messenger = "MAX"

    def reason(self, error: Exception) -> str:
        return str(error.status) if isinstance(error, MaxError) else type(error).__name__

    async def answer(self, effects: list[Effect]) -> Show | None:
        """Answer the press, with the screen shown in place of the pressed message where
        there is one (MAX edits the message with the answer: one request); the screen it
        carried, if it did."""
        assert self.callback_id is not None
        callback_id = self.callback_id
        show = next(
            (e for e in effects if isinstance(e, Show) and e.in_place and self.origin), None
        )
        notice = answer_of(effects)
        notification = shorten(plain(notice.text), NOTIFICATION_LIMIT) if notice else None
        message = body(show.screen) if show is not None else None
        if message is None and not notification:
            notification = texts.PRESS_TAKEN  # MAX refuses an empty answer
        try:
            await self._patiently(
                self.api.answers,
                lambda: self.api.answer(callback_id, message=message, notification=notification),
            )
        except MaxError as error:  # too late, or the message is gone: the screen goes anew
            log.info("press in MAX dialog %s not answered: %s", self.chat_id, error.status)
            return None
        return show

    async def send(self, screen: Screen) -> str:
        return await self._patiently(
            self.api.messages, lambda: self.api.send(body(screen), self.chat_id)
        )

    async def document(self, document: Document) -> None:
        """The file uploaded, then a message with it attached and the caption as its text (a
        file must be a message's only attachment: no keyboard). MAX may need a moment before
        an uploaded file can be attached (`attachment.not.ready`): asked again a few times."""
        token = await self.api.upload_file(document.filename, document.content)
        message = file_body(document.caption, token)
        for wait in ATTACHMENT_WAITS:
            try:
                await self._patiently(
                    self.api.messages, lambda: self.api.send(message, self.chat_id)
                )
                return
            except MaxError as error:
                if error.code != ATTACHMENT_NOT_READY:
                    raise
            await asyncio.sleep(wait)
        await self._patiently(self.api.messages, lambda: self.api.send(message, self.chat_id))

    async def edit(self, mid: str, screen: Screen) -> bool:
        try:
            await self._patiently(self.api.messages, lambda: self.api.edit(mid, body(screen)))
        except MaxError as error:
            if error.status in (400, 403, 404):
                log.info("MAX message can no longer be edited (%s), sending anew", error.status)
                return False
            raise
        return True

    async def edit_earlier(self, effect: Edit) -> None:
        try:
            await self.edit(effect.message_id, effect.screen)
        except MaxError as error:
            log.info("earlier MAX message not edited: %s", error.status)

    async def remove(self, mid: str) -> None:
        try:
            # MAX states no limit for deletions: not paced.
            await self._patiently(None, lambda: self.api.delete(mid))
        except MaxError as error:  # already gone, or not a MAX message's id
            log.info("MAX message not removed: %s", error.status)

    async def _patiently(self, pacer: ChatPacer | None, call: Callable[[], Awaitable[T]]) -> T:
        """The call in its turn in the dialog (`pacer`'s), made once more after a 429 and a
        wait."""
        try:
            return await self._in_turn(pacer, call)
        except MaxError as error:
            if not error.rate_limited:
                raise
        await asyncio.sleep(RATE_LIMIT_WAIT)
        return await self._in_turn(pacer, call)

    async def _in_turn(self, pacer: ChatPacer | None, call: Callable[[], Awaitable[T]]) -> T:
        if pacer is None:
            return await call()
        async with pacer.turn(self.chat_id):
            return await call()
