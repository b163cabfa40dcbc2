"""Linking in the chat: `/start <token>` (portal first), confirming a switch of accounts,
`/logout` with confirmation; and what an unlinked user gets (/start, /help, anything else).
These work before the consent too: a person may switch accounts or withdraw without
accepting it."""

from __future__ import annotations

import logging

from bot import texts
from bot.conversation.effects import Reply
from bot.conversation.intents import LinkAction, LinkIntent
from bot.conversation.turn import Turn
from bot.screens import linking as screens
from bot.screens.markup import escape
from bot.screens.menu import main_menu, message
from bot.screens.pieces import local_time
from bot.texts import linking as link_texts
from bot.texts.domain import role_label
from bot.texts.linking import CONSENT_VERSION
from bot.texts.messengers import messenger_name, say
from services.applications import menu_count
from services.linking import (
    Linked,
    LinkRefused,
    MoveDecided,
    MoveRequested,
    Refusal,
    SwitchNeeded,
    allow_move,
    cancel_switch,
    confirm_switch,
    deny_move,
    has_consent,
    mint_bot_token,
    redeem_portal_token,
    unlink_account,
)
from storage.repositories import Repositories

log = logging.getLogger(__name__)


# Messengers whose bot-first sign-in page can prove that the browser belongs to the user who
# asked (launch data signed with the bot token). Not MAX yet: its mini-app launch data could not
# be confirmed to carry the button's payload (docs/MAX.md); there the portal-first way is offered.
SIGN_IN_PROVED = frozenset({"telegram"})


def offers_sign_in(turn: Turn) -> bool:
    """«Войти через Госуслуги» is offered in this chat."""
    return turn.settings.bot_first_sign_in and turn.peer.messenger in SIGN_IN_PROVED


def refusal_text(turn: Turn, reason: Refusal, elsewhere: tuple[str, ...] = ()) -> str:
    settings = turn.settings
    new_link = link_texts.NEW_LINK_PORTAL
    if offers_sign_in(turn):
        new_link += link_texts.NEW_LINK_BOT_FIRST
    return say(
        link_texts.REFUSALS[reason],
        turn.peer.messenger,
        new_link=say(new_link, turn.peer.messenger),
        ttl_minutes=settings.LINK_TOKEN_TTL // 60,
        elsewhere=link_texts.messenger_list(elsewhere),
    )


async def announcement(
    repo: Repositories, linked: Linked, messenger: str, *, in_place: bool = False
) -> Reply:
    """What a chat hears when it is bound: who it is now (in place of the pressed message, if
    asked), then the consent until it is accepted, the main menu after; the chat's commands
    follow. Also told by the bot-first sign-in page, outside any update."""
    reply = Reply()
    actor = linked.actor
    signed_in = screens.signed_in(actor.full_name, role_label(actor.role), already=linked.already)
    reply.show(signed_in, in_place=in_place)
    if has_consent(linked.binding.account, CONSENT_VERSION):
        reply.send(main_menu(actor, await menu_count(repo, actor)))
        reply.commands(actor.role)
    else:
        reply.send(screens.consent(messenger))
        reply.commands(None)
    return reply


async def first_screen(turn: Turn, linked: Linked, *, in_place: bool = False) -> None:
    turn.binding, turn.actor = linked.binding, linked.actor
    reply = await announcement(turn.repo, linked, turn.peer.messenger, in_place=in_place)
    if not has_consent(linked.binding.account, CONSENT_VERSION):  # in the announcement
        turn.state.set_consent_shown(CONSENT_VERSION)
    turn.reply.effects += reply.effects


def log_linked(linked: Linked, how: str) -> None:
    if not linked.already:
        log.info(
            "account %s linked to %s user %s (%s)",
            linked.binding.account_id,
            linked.binding.messenger,
            linked.binding.user_id,
            how,
        )


async def redeem(turn: Turn, token: str) -> None:
    """`/start <token>`: the payload of a link from the web module."""
    outcome = await redeem_portal_token(turn.repo, token, turn.peer.user, clock=turn.clock)
    if isinstance(outcome, LinkRefused):
        log.info(
            "link token refused for %s user %s: %s",
            turn.peer.messenger,
            turn.peer.user_id,
            outcome.reason.value,
        )
        turn.reply.show(message(refusal_text(turn, outcome.reason, outcome.elsewhere)))
    elif isinstance(outcome, SwitchNeeded):
        turn.reply.show(
            screens.switch_question(
                outcome.current_name, outcome.target_name, outcome.token_id, turn.peer.messenger
            )
        )
    elif isinstance(outcome, MoveRequested):
        log.info(
            "%s user %s waits for a bound owner's permission (%s)",
            turn.peer.messenger,
            turn.peer.user_id,
            "add" if outcome.adding else "move",
        )
        until = local_time(outcome.expires_at, turn.settings.zone)
        if outcome.adding:
            turn.reply.show(screens.add_requested(until, outcome.asked_in, turn.peer.messenger))
        else:
            turn.reply.show(screens.move_requested(until, turn.peer.messenger))
    else:
        log_linked(outcome, "portal first")
        await first_screen(turn, outcome, in_place=False)


async def on_link(turn: Turn, pressed: LinkIntent) -> None:
    if pressed.action is LinkAction.SWITCH:
        await switch(turn, pressed.token)
    elif pressed.action is LinkAction.KEEP:
        await cancel_switch(turn.repo, pressed.token, turn.peer.user)
        if turn.account is None:
            turn.reply.show(message(link_texts.SWITCH_STALE))
        else:
            turn.reply.show(screens.switch_kept(turn.account.full_name))
    elif pressed.action in (LinkAction.ALLOW_MOVE, LinkAction.DENY_MOVE):
        await answer_move(turn, pressed)
    elif pressed.action is LinkAction.LOGOUT:
        await logout(turn)
    elif pressed.action is LinkAction.ASK_LOGOUT:
        ask_logout(turn)
    elif turn.binding is None:  # STAY
        turn.reply.show(message(say(link_texts.NOT_LINKED, turn.peer.messenger)))
    else:
        turn.reply.show(message(say(link_texts.LOGOUT_KEPT, turn.peer.messenger), menu=True))


async def switch(turn: Turn, token_id: int) -> None:
    """«Да, сменить учётную запись»."""
    outcome = await confirm_switch(turn.repo, token_id, turn.peer.user, clock=turn.clock)
    if isinstance(outcome, LinkRefused):
        text = (
            link_texts.SWITCH_STALE
            if outcome.reason is Refusal.UNKNOWN
            else refusal_text(turn, outcome.reason)
        )
        turn.reply.show(message(text))
        return
    log_linked(outcome, "switched accounts")
    await first_screen(turn, outcome, in_place=True)


async def answer_move(turn: Turn, pressed: LinkIntent) -> None:
    """«Разрешить» / «Запретить» under «Разрешить привязку к другому Telegram-аккаунту?» (a
    move) or «Разрешить привязку MAX-аккаунта к вашей учётной записи?» (an add).

    Only a user the request waits for decides, whatever the button says.
    """
    decide = allow_move if pressed.action is LinkAction.ALLOW_MOVE else deny_move
    outcome = await decide(turn.repo, pressed.token, turn.peer.user, clock=turn.clock)
    if isinstance(outcome, LinkRefused):
        if outcome.reason is Refusal.EXPIRED:
            text = link_texts.MOVE_EXPIRED_OWNER
        elif outcome.reason is Refusal.NO_ROLES:
            text = refusal_text(turn, outcome.reason)
        else:
            text = link_texts.MOVE_STALE
        turn.reply.show(message(text))
        return
    if outcome.adding:
        added_answer(turn, outcome)
        return
    if outcome.linked is None:
        turn.reply.show(message(say(link_texts.MOVE_DENIED_OWNER, turn.peer.messenger), menu=True))
        return
    log_linked(outcome.linked, "moved with the bound owner's permission")
    turn.state.clear()  # this chat is no longer bound: forget its state, as /logout does
    turn.binding = turn.actor = None
    account = escape(link_texts.messenger_account(outcome.requester))
    text = say(link_texts.MOVE_ALLOWED_OWNER, turn.peer.messenger, account=account)
    turn.reply.show(message(text))
    turn.reply.commands(None)


def added_answer(turn: Turn, outcome: MoveDecided) -> None:
    """The owner answered a request to add a binding in another messenger: this chat stays
    bound either way."""
    asker = messenger_name(outcome.requester.messenger)
    if outcome.linked is None:
        text = say(link_texts.ADD_DENIED_OWNER, turn.peer.messenger, asker=asker)
    else:
        log_linked(outcome.linked, "added with a bound owner's permission")
        account = escape(link_texts.messenger_account(outcome.requester))
        text = say(link_texts.ADD_ALLOWED_OWNER, turn.peer.messenger, asker=asker, account=account)
    turn.reply.show(message(text, menu=True))


def ask_logout(turn: Turn) -> None:
    if turn.account is None:
        turn.reply.show(message(say(link_texts.NOT_LINKED, turn.peer.messenger)))
        return
    turn.reply.show(screens.logout_question(turn.account.full_name, turn.peer.messenger))


async def logout(turn: Turn) -> None:
    """«Да, отвязать»: this messenger's binding, the chat's pending pushes and the conversation
    go (the person's bindings in other messengers stay)."""
    if turn.binding is None:
        turn.reply.show(message(say(link_texts.NOT_LINKED, turn.peer.messenger)))
        return
    account_id, messenger = turn.binding.account_id, turn.binding.messenger
    await unlink_account(turn.repo, account_id, clock=turn.clock, tell=None, messenger=messenger)
    turn.state.clear()
    turn.binding = turn.actor = None
    log.info("account %s unlinked from %s by /logout", account_id, messenger)
    turn.reply.show(message(say(link_texts.LOGOUT_DONE, turn.peer.messenger)))
    turn.reply.commands(None)


# --- an unlinked user ----------------------------------------------------------------------


async def welcome(turn: Turn) -> None:
    """/start of an unlinked user: «Войти через Госуслуги» (bot first) when a provider is
    configured, otherwise the portal-first way."""
    settings = turn.settings
    ttl_minutes = settings.LINK_TOKEN_TTL // 60
    if not offers_sign_in(turn):
        turn.reply.show(screens.welcome(ttl_minutes, turn.peer.messenger))
        return
    minted = await mint_bot_token(turn.repo, turn.peer.user, ttl=turn.link_ttl, clock=turn.clock)
    url = f"{settings.public_base}/link/{minted.token}"
    turn.reply.show(screens.welcome_with_sign_in(ttl_minutes, url, turn.peer.messenger))


def help_unlinked(turn: Turn) -> None:
    turn.reply.show(message(say(texts.HELP_UNLINKED, turn.peer.messenger)))


def anything_else(turn: Turn) -> None:
    turn.reply.show(message(say(texts.UNKNOWN_UNLINKED, turn.peer.messenger)))
