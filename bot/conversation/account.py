"""The person's side of the conversation: the consent gate, the main menu, the profile and the
role switch, help, «🔔 Уведомления», and whether the chat is reachable."""

from __future__ import annotations

from datetime import datetime

from bot.conversation import applications
from bot.conversation.intents import (
    MenuAction,
    MenuIntent,
    NotifyAction,
    NotifyIntent,
    ProfileAction,
    ProfileIntent,
)
from bot.conversation.turn import Turn
from bot.screens import linking as link_screens
from bot.screens import menu as screens
from bot.screens.pieces import local_time
from bot.screens.screen import Screen
from bot.texts import linking as link_texts
from bot.texts import notifications as notification_texts
from bot.texts.domain import role_label
from bot.texts.linking import CONSENT_VERSION
from bot.texts.zones import zone_phrase
from services.applications import menu_count
from services.domain import Actor, Role
from services.linking import accept_consent, account_roles, actor_for, has_consent, switch_role
from services.outbox import chat_blocked, chat_unblocked
from services.queries import changes_since
from storage.models import MESSENGERS, PUSH_BOTH, Account
from storage.repositories import pushed_to
from storage.senders import Facts

NOTICES = {
    NotifyAction.MUTE: notification_texts.MUTED,
    NotifyAction.UNMUTE: notification_texts.UNMUTED,
    NotifyAction.DIGEST_OFF: notification_texts.DIGEST_DISABLED,
    NotifyAction.DIGEST_ON: notification_texts.DIGEST_ENABLED,
}


def consented(turn: Turn) -> bool:
    return turn.account is not None and has_consent(turn.account, CONSENT_VERSION)


async def menu_screen(turn: Turn, actor: Actor) -> Screen:
    return screens.main_menu(actor, await menu_count(turn.repo, actor))


async def show_menu(turn: Turn) -> None:
    assert turn.actor is not None
    turn.reply.show(await menu_screen(turn, turn.actor))


# --- consent -------------------------------------------------------------------------------


def ask_consent(turn: Turn, *, pressed: bool = False) -> None:
    """For anything a linked user does before accepting the consent: one consent message. A
    press turns its message into the consent (in place); a message gets the consent the first
    time, then a short pointer to it with a button that opens it again."""
    if pressed:
        turn.reply.notice(link_texts.CONSENT_REQUIRED)
    elif turn.state.consent_shown == CONSENT_VERSION:
        turn.reply.show(link_screens.consent_pointer(turn.peer.messenger))
        return
    show_consent(turn)


def show_consent(turn: Turn) -> None:
    """The consent text, in place of the pressed message (or as a new one)."""
    turn.reply.show(link_screens.consent(turn.peer.messenger))
    turn.state.set_consent_shown(CONSENT_VERSION)


async def accept(turn: Turn) -> None:
    """«Ознакомился»: the time and the text's version are stored, the main menu opens."""
    assert turn.account is not None
    if not has_consent(turn.account, CONSENT_VERSION):
        account = await turn.for_change()
        accept_consent(account, version=CONSENT_VERSION, clock=turn.clock)
        turn.actor = actor_for(account)
        turn.reply.commands(turn.actor.role)
    turn.state.set_consent_shown(None)
    turn.reply.notice(link_texts.CONSENT_ACCEPTED)
    await show_menu(turn)


# --- menu, profile, help -------------------------------------------------------------------


async def profile_screen(turn: Turn) -> Screen:
    actor = turn.actor
    assert actor is not None
    organization = (
        await turn.repo.accounts.organization(actor.organization_id)
        if actor.organization_id is not None
        else None
    )
    return screens.profile(actor, organization.name if organization is not None else None)


async def on_menu(turn: Turn, pressed: MenuIntent) -> None:
    actor = turn.actor
    assert actor is not None
    if pressed.action is MenuAction.HOME:
        await show_menu(turn)
    elif pressed.action is MenuAction.APPLICATIONS:
        await applications.open_home_list(turn)
    elif pressed.action is MenuAction.NOTIFICATIONS:
        turn.reply.show(await notifications_screen(turn))
    elif pressed.action is MenuAction.PROFILE:
        turn.reply.show(await profile_screen(turn))
    else:
        turn.reply.show(screens.help_screen(actor, turn.peer.messenger))


async def on_profile(turn: Turn, pressed: ProfileIntent) -> None:
    """«Сменить роль» lists the account's roles; a role chosen opens the menu of that role, in
    place, and the chat's commands follow. A role the account lacks is refused."""
    account, actor = turn.linked()
    if pressed.action is ProfileAction.ROLES:
        turn.reply.show(screens.roles(actor))
        return
    switched = None
    if pressed.role is not None and pressed.role in account_roles(account):
        switched = switch_role(await turn.for_change(), pressed.role)
    if switched is None:
        turn.reply.alert(link_texts.ROLE_NOT_YOURS)
        turn.reply.show(screens.roles(actor))
        return
    turn.actor = switched
    turn.reply.notice(link_texts.ROLE_SWITCHED.format(role=role_label(switched.role)))
    await show_menu(turn)
    turn.reply.commands(switched.role)


# --- notifications -------------------------------------------------------------------------


async def bound_of(turn: Turn, account: Facts) -> list[tuple[str, datetime, bool]]:
    """The messengers the account is bound in, with when each was bound and whether its chat
    blocked the bot (`pushed_to`)."""
    bindings = await turn.repo.links.of_account(account.id)
    return [(binding.messenger, binding.linked_at, binding.blocked) for binding in bindings]


async def notifications_screen(turn: Turn) -> Screen:
    (account, actor), settings = turn.linked(), turn.settings
    bound = await bound_of(turn, account)
    return screens.notifications(
        screens.NotificationSettings(
            muted=account.muted,
            digest_enabled=account.digest_enabled,
            digest_time=settings.DIGEST_TIME,
            zone=zone_phrase(settings.zone, turn.clock.now()),
            bound=tuple(m for m in MESSENGERS if m in {messenger for messenger, *_ in bound}),
            pushed_to=frozenset(pushed_to(account.push_to, bound)),
        ),
        actor,
    )


# Where a press of «В Telegram» / «В MAX» / «В оба» sends pushes (Account.push_to).
PUSH_TARGETS = {
    NotifyAction.PUSH_TELEGRAM: "telegram",
    NotifyAction.PUSH_MAX: "max",
    NotifyAction.PUSH_BOTH: PUSH_BOTH,
}


async def on_notify(turn: Turn, pressed: NotifyIntent) -> None:
    _, actor = turn.linked()
    account = await turn.for_change()
    action = pressed.action
    summary = None
    if action in PUSH_TARGETS:
        account.push_to = PUSH_TARGETS[action]
        where = pushed_to(account.push_to, await bound_of(turn, account))
        turn.reply.notice(notification_texts.PUSH_SET.format(where=screens.push_target(where)))
        turn.reply.show(await notifications_screen(turn))
        return
    if action in (NotifyAction.MUTE, NotifyAction.UNMUTE):
        was_muted = account.muted
        account.muted = action is NotifyAction.MUTE
        if action is NotifyAction.MUTE and not was_muted:
            account.muted_at = turn.clock.now()
        elif action is NotifyAction.UNMUTE and was_muted:
            summary = await muted_summary(turn, account, actor)
    elif Role.DIRECTOR in actor.roles or Role.STAFF in actor.roles:
        account.digest_enabled = action is NotifyAction.DIGEST_ON
    else:  # a forged button: the digest is for directors only
        turn.reply.alert(notification_texts.DIGEST_FOR_DIRECTORS)
        return
    turn.reply.notice(NOTICES[action])
    turn.reply.show(await notifications_screen(turn))
    if summary is not None:
        turn.reply.send(summary)


async def muted_summary(turn: Turn, account: Account, actor: Actor) -> Screen | None:
    """What changed while pushes were off, as one message, whichever messenger they were muted
    in (the moment is the person's, `Account.muted_at`); None if it is not known."""
    moment = account.muted_at
    account.muted_at = None
    if moment is None:
        return None
    changes = await changes_since(turn.repo, actor, moment)
    shown = local_time(moment, turn.settings.zone)
    return screens.muted_summary(changes, shown, actor.role)


async def reachable(turn: Turn, now_reachable: bool) -> None:
    """The user blocked the bot or came back: the chat's pushes are held or released."""
    binding = turn.binding
    if binding is None:
        return
    if not now_reachable and turn.peer.chat_id != binding.chat_id:
        return  # a chat the binding has left (a dialog removed before the user came back)
    if now_reachable:
        await chat_unblocked(
            turn.repo.session, binding.messenger, binding.chat_id, turn.clock.now()
        )
    else:
        await chat_blocked(turn.repo.session, binding.messenger, binding.chat_id, turn.clock.now())
