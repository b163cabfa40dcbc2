"""The one place an update is handled, for every messenger: exactly once, in one transaction,
and nothing shown before it is true.

For each `Incoming` a front end translated:

1. the user's lock is taken (bot/conversation/locks.py): one update of a user at a time;
2. one session is opened: the sender's binding, actor and conversation state are loaded; a
   binding whose user writes from another chat follows it (its unsent pushes too); a chat
   marked blocked is reachable again; the conversation (bot/conversation/dispatch.py)
   writes its changes and the reply's effects; the state and the record that the update is
   handled are written — if the record was there already (storage/updates.py), the update was
   handled before and everything is rolled back and skipped; else the transaction commits. No
   messenger is awaited while it is open;
3. after the commit, the effects are carried out by the front end's executor, still under the
   user's lock (the next press of the user sees this one's screen).

A flow that raises, or a commit that fails, changes nothing: the transaction rolls back, the
update is recorded as handled (in a transaction of its own) and the person is told it was not
done, with the card as it is for a press on an application. If even the record cannot be
written, nothing is said and the receipt asks the messenger to deliver the update again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from bot.conversation import dispatch
from bot.conversation.applications import card_screen, visible
from bot.conversation.effects import Effect, Executor, Notice, Show
from bot.conversation.intents import AppAction, AppIntent, decode
from bot.conversation.locks import InProcessLocks, UserLocks
from bot.conversation.receipts import Handling, Receipt
from bot.conversation.state import ChatState
from bot.conversation.turn import Incoming, Press, Reachable, Turn
from bot.screens.markup import escape
from bot.screens.menu import message
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.texts.linking import CONSENT_VERSION
from services.clock import Clock
from services.linking import actor_for, has_consent
from services.outbox import chat_moved, chat_unblocked
from storage.repositories import Repositories
from storage.states import SqlStates, StateStore
from storage.updates import UpdateKey, mark_handled, record_update

log = logging.getLogger(__name__)

Conversation = Callable[[Turn], Awaitable[None]]


@dataclass
class Runner:
    session_factory: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Clock
    states: StateStore | None = None
    locks: UserLocks = field(default_factory=InProcessLocks)
    conversation: Conversation = dispatch.handle
    # Called after every commit of an update. (The dispatchers need no hook: a commit that wrote
    # outbox rows wakes them itself, storage/outbox_signal.py.)
    committed: list[Callable[[], None]] = field(default_factory=list)
    # Called when the process stops (a Redis client to close).
    closing: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.states is None:
            self.states = SqlStates(self.session_factory)

    async def close(self) -> None:
        for close in self.closing:
            await close()

    async def run(self, incoming: Incoming, executor: Executor) -> Receipt:
        async with self.locks.lock(incoming.peer.state_key):
            receipt, effects = await self._handle(incoming)
            if receipt.outcome is not Handling.DUPLICATE:  # its first handling answered it
                await executor.execute(effects)  # even none: a press is answered
        return receipt

    async def _handle(self, incoming: Incoming) -> tuple[Receipt, list[Effect]]:
        assert self.states is not None
        peer = incoming.peer
        update_id = (
            UpdateKey(peer.messenger, str(incoming.update_id))
            if incoming.update_id is not None
            else None
        )
        async with self.session_factory() as session:
            try:
                # Whether the update was handled before is asked by the record written with the
                # commit (mark_handled), not by a SELECT first: a redelivery, rare, is handled
                # again and rolled back; every other update saves a statement.
                turn = await self._turn(session, incoming)
                await self.conversation(turn)
                after_commit = None
                if turn.state.changed:
                    after_commit = await self.states.save(
                        session, peer.state_key, turn.state.to_raw()
                    )
                if update_id is not None and not await mark_handled(
                    session, update_id, self.clock.now()
                ):
                    await session.rollback()
                    log.info("update %s was handled before; this handling undone", update_id)
                    return Receipt(Handling.DUPLICATE), []
                await session.commit()
            except Exception as error:
                await session.rollback()
                # Only the update id and the exception: update contents may hold personal data.
                log.error("update %s failed: %s", update_id, type(error).__name__, exc_info=error)
                recorded = await self._record_failure(update_id)
                if recorded is None:
                    return Receipt(), []  # the messenger delivers it again; nothing was said
                if not recorded:  # a redelivery of an update handled (or failed) before
                    log.info("update %s was handled before; skipped", update_id)
                    return Receipt(Handling.DUPLICATE), []
                return Receipt(Handling.FAILED), await self._not_done(incoming)
            except BaseException:  # cancelled (a stop): not acknowledged, delivered again
                await session.rollback()
                raise
        for callback in self.committed:
            callback()
        if after_commit is not None:
            try:
                await after_commit()
            except Exception as error:  # the change is committed; the input is lost at worst
                log.warning("conversation state not saved: %s", type(error).__name__)
        return Receipt(Handling.HANDLED), turn.reply.effects

    async def _turn(self, session: AsyncSession, incoming: Incoming) -> Turn:
        assert self.states is not None
        peer = incoming.peer
        # The sender's binding in this messenger: (peer.messenger, peer.user_id).
        binding, raw = await self.states.load(session, peer.state_key)
        gone = isinstance(incoming.event, Reachable) and not incoming.event.reachable
        written = not isinstance(incoming.event, (Reachable, Press))
        if binding is not None and binding.chat_id != peer.chat_id and written:
            # The user writes from another chat (MAX: a dialog removed and started again): the
            # binding and its unsent pushes follow, instead of going to the dead chat. Only a
            # message or a start, which every front end takes from the user's own dialog alone
            # (a press or a membership change may come from a group the bot was added to).
            await chat_moved(session, binding.id, binding.messenger, binding.chat_id, peer.chat_id)
            binding = replace(binding, chat_id=peer.chat_id)
        if binding is not None and binding.blocked and not gone:
            # The user wrote or pressed: reachable again, the pushes held for them are released.
            await chat_unblocked(session, binding.messenger, binding.chat_id, self.clock.now())
            binding = replace(binding, blocked=False)
        return Turn(
            peer=peer,
            event=incoming.event,
            repo=Repositories(session),
            binding=binding,
            actor=actor_for(binding.account) if binding is not None else None,
            state=ChatState.from_raw(raw),
            settings=self.settings,
            clock=self.clock,
        )

    async def _record_failure(self, update_id: UpdateKey | None) -> bool | None:
        """A failed update is handled once too: recorded in a transaction of its own. True
        if recorded now, False if it was recorded before (a redelivery: its first handling
        answered), None if even that fails (the database is unavailable): the update must come
        again."""
        if update_id is None:
            return True
        try:
            return await record_update(self.session_factory, update_id, self.clock.now())
        except SQLAlchemyError as error:
            log.warning("update %s could not be recorded: %s", update_id, type(error).__name__)
            return None

    async def _not_done(self, incoming: Incoming) -> list[Effect]:
        """What a person hears when their update failed: it was not done; for a press on an
        application, the card as it is now."""
        if not isinstance(incoming.event, Press):
            return [Show(message(texts.SOMETHING_WENT_WRONG))]
        notice = Notice(texts.SOMETHING_WENT_WRONG, alert=True)
        return [notice, *await self._as_it_is(incoming, note=texts.NOT_SAVED)]

    async def _as_it_is(self, incoming: Incoming, note: str | None = None) -> list[Effect]:
        """For a press on an application, the card as it is now."""
        event = incoming.event
        intent = decode(event.payload) if isinstance(event, Press) else None
        if not isinstance(intent, AppIntent):
            return []
        try:
            card = await self._card_as_it_is(incoming, intent, note)
        except Exception as error:  # nothing more to show, then
            log.warning("could not redraw the card: %s", type(error).__name__)
            return []
        return [Show(card)] if card is not None else []

    async def _card_as_it_is(
        self, incoming: Incoming, pressed: AppIntent, note: str | None
    ) -> Screen | None:
        assert self.states is not None
        async with self.session_factory() as session:
            turn = await self._turn(session, incoming)
            if turn.account is None or not has_consent(turn.account, CONSENT_VERSION):
                return None
            application = await visible(turn, pressed.number)
            if application is None:
                return None
            base = replace(pressed, action=AppAction.OPEN, page=0)
            return await card_screen(turn, application, base, note=escape(note) if note else None)
