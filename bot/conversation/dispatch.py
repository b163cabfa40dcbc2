"""Which flow an event goes to, in one place, for every messenger.

In order: reachability; linking (`/start <token>`, `/logout`, their buttons), which works
before the consent; an unlinked user's /start, /help and anything else; the consent gate
(nothing else works for a linked user before «Ознакомился»); then, for a linked user who
accepted it, the menu, profile, notifications and application flows of the active role. Any
button press or command but /cancel ends a pending text input first, so a later text is
never taken for a decision's comment: its prompt is edited to say so, and the next text is
offered for what the prompt asked (applications.late_text) instead of being silently taken
for something else. Outside an input a text is what the role can do with it: a search for
directors and staff, a comment on one of her applications for an applicant. Every message
gets an answer with a way to the menu. A press no flow takes (a button from before an update,
a forged one) is answered with an alert and changes nothing.
"""

from __future__ import annotations

import re

from bot import texts
from bot.conversation import account, applications, bulk, linking
from bot.conversation.intents import (
    AppAction,
    AppIntent,
    BulkIntent,
    ConsentAction,
    ConsentIntent,
    FacetIntent,
    Intent,
    LinkIntent,
    ListAction,
    ListIntent,
    MenuIntent,
    NotifyIntent,
    ProfileIntent,
    decode,
)
from bot.conversation.state import Input
from bot.conversation.turn import Command, Press, Reachable, Text, Turn
from bot.screens.applications import VIEWS
from bot.screens.menu import help_screen, message

APP_LINK = re.compile(r"^app_(\d{1,18})$")  # https://t.me/<bot>?start=app_<number>


async def handle(turn: Turn) -> None:
    event = turn.event
    if isinstance(event, Reachable):
        await account.reachable(turn, event.reachable)
        return
    intent = decode(event.payload) if isinstance(event, Press) else None
    left = turn.state.take_left()  # an input the previous update ended, for this one only
    if not uses_held(intent):
        turn.state.drop_held()
    if turn.binding is not None and turn.state.input is not None and leaves_input(turn):
        applications.leave_input(turn)
    if await linking_first(turn, intent):
        return
    if turn.binding is None:
        await unlinked(turn)
        return
    if not account.consented(turn):
        if isinstance(intent, ConsentIntent) and intent.action is ConsentAction.SHOW:
            account.show_consent(turn)
        elif isinstance(intent, ConsentIntent):
            await account.accept(turn)
        else:
            account.ask_consent(turn, pressed=isinstance(event, Press))
        return
    if isinstance(event, Press):
        await press(turn, intent)
    elif isinstance(event, Command):
        await command(turn, event)
    elif isinstance(event, Text):
        if turn.state.input is Input.BULK_COMMENT:
            await bulk.comment_input(turn, event.text)
        elif turn.state.input is not None:
            await applications.text_for_input(turn, event.text)
        elif left is not None:
            await applications.late_text(turn, event.text, left)
        else:
            await applications.free_text(turn, event.text)
    elif turn.state.input is not None:
        applications.not_text(turn)
    else:
        turn.reply.show(message(texts.NOT_UNDERSTOOD, menu=True))


def uses_held(intent: Intent | None) -> bool:
    """A press that uses the text kept for the person's choice; any other update forgets it."""
    return (isinstance(intent, AppIntent) and intent.action is AppAction.USE_HELD) or (
        isinstance(intent, ListIntent) and intent.action is ListAction.FIND_HELD
    )


def leaves_input(turn: Turn) -> bool:
    """A press, or a command but /cancel: the pending input is over."""
    event = turn.event
    return isinstance(event, Press) or (isinstance(event, Command) and event.name != "cancel")


async def linking_first(turn: Turn, intent: Intent | None) -> bool:
    """`/start <token>`, `/logout` and their buttons, for anyone; True if handled."""
    event = turn.event
    if isinstance(event, Command):
        if event.name == "start" and event.args and not APP_LINK.fullmatch(event.args):
            await linking.redeem(turn, event.args)
            return True
        if event.name == "logout":
            linking.ask_logout(turn)
            return True
    if isinstance(intent, LinkIntent):
        await linking.on_link(turn, intent)
        return True
    return False


async def unlinked(turn: Turn) -> None:
    event = turn.event
    if isinstance(event, Command) and event.name == "start":
        await linking.welcome(turn)
    elif isinstance(event, Command) and event.name == "help":
        linking.help_unlinked(turn)
    elif isinstance(event, Press):
        stale(turn)
    else:
        linking.anything_else(turn)


async def command(turn: Turn, event: Command) -> None:
    actor = turn.actor
    assert actor is not None
    if event.name in ("start", "menu"):
        match = APP_LINK.fullmatch(event.args or "") if event.name == "start" else None
        if match is not None:
            await applications.open_card_by_link(turn, int(match.group(1)))
        else:
            await account.show_menu(turn)
    elif event.name == "profile":
        turn.reply.show(await account.profile_screen(turn))
    elif event.name == "help":
        turn.reply.show(help_screen(actor, turn.peer.messenger))
    elif event.name == "cancel":
        await applications.cancel_input(turn)
    elif turn.state.input is not None:
        applications.not_text(turn)
    else:
        turn.reply.show(message(texts.UNKNOWN_COMMAND, menu=True))


async def press(turn: Turn, intent: Intent | None) -> None:
    actor = turn.actor
    assert actor is not None
    if isinstance(intent, MenuIntent):
        await account.on_menu(turn, intent)
    elif isinstance(intent, AppIntent):
        await applications.on_app(turn, intent)
    elif isinstance(intent, ListIntent):
        await applications.on_list(turn, intent)
    elif isinstance(intent, BulkIntent):
        await bulk.on_bulk(turn, intent)
    elif isinstance(intent, FacetIntent) and VIEWS[actor.role].facets:
        await applications.on_facet(turn, intent)
    elif isinstance(intent, ProfileIntent):
        await account.on_profile(turn, intent)
    elif isinstance(intent, NotifyIntent):
        await account.on_notify(turn, intent)
    elif isinstance(intent, ConsentIntent):  # «Ознакомился» (or its pointer) on an older screen
        await account.accept(turn)
    else:
        stale(turn)


def stale(turn: Turn) -> None:
    """The last resort for a press no flow takes: answered, nothing changes."""
    turn.reply.alert(texts.STALE_BUTTON)
