"""The screens around the applications: the main menu of the active role, the profile and the
role switch, help, «🔔 Уведомления»."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import time

from bot import texts
from bot.conversation.intents import (
    LinkAction,
    LinkIntent,
    ListFilter,
    ListIntent,
    MenuAction,
    MenuIntent,
    NotifyAction,
    NotifyIntent,
    ProfileAction,
    ProfileIntent,
)
from bot.screens.applications import back_to_menu, menu_only
from bot.screens.markup import escape
from bot.screens.screen import Button, Screen, rows
from bot.texts import linking as link_texts
from bot.texts import notifications as notification_texts
from bot.texts.domain import role_label
from bot.texts.messengers import messenger_name, say
from services.domain import Actor, Role
from services.queries import Changes


def main_menu(actor: Actor, count: int) -> Screen:
    """The main menu of the active role; `count` is what waits for the user."""
    role = actor.role
    if role is Role.DIRECTOR:
        applications = texts.MENU_APPLICATIONS_DIRECTOR(count)
    elif role is Role.STAFF:
        applications = texts.MENU_APPLICATIONS_STAFF.format(count=count)
    else:
        applications = texts.MENU_APPLICATIONS_LISTENER
    text = texts.MENU_TITLE.format(name=escape(actor.full_name), role=role_label(role))
    return Screen(
        text,
        rows(
            Button(applications, MenuIntent(MenuAction.APPLICATIONS)),
            Button(texts.MENU_NOTIFICATIONS, MenuIntent(MenuAction.NOTIFICATIONS)),
            Button(texts.MENU_PROFILE, MenuIntent(MenuAction.PROFILE)),
            Button(texts.MENU_HELP, MenuIntent(MenuAction.HELP)),
        ),
    )


def profile(actor: Actor, organization: str | None) -> Screen:
    roles = ", ".join(role_label(role) for role in Role if role in actor.roles)
    text = link_texts.PROFILE.format(
        name=escape(actor.full_name),
        organization=escape(organization if organization is not None else link_texts.NOT_SPECIFIED),
        roles=escape(roles or link_texts.NOT_SPECIFIED),
        role=escape(role_label(actor.role)),
    )
    return Screen(
        text,
        rows(
            Button(link_texts.PROFILE_SWITCH_ROLE, ProfileIntent(ProfileAction.ROLES)),
            Button(link_texts.PROFILE_LOGOUT, LinkIntent(LinkAction.ASK_LOGOUT)),
            back_to_menu(),
        ),
    )


def roles(actor: Actor) -> Screen:
    """One button per role of the account, in the order of the Role enum; the active one ticked."""
    choices = [
        Button(
            (link_texts.ROLE_CURRENT_MARK if role is actor.role else "") + role_label(role),
            ProfileIntent(ProfileAction.SET_ROLE, role),
        )
        for role in Role
        if role in actor.roles
    ]
    return Screen(link_texts.ROLES_TITLE, rows(*choices, back_to_menu()))


def help_screen(actor: Actor, messenger: str) -> Screen:
    text = say(
        link_texts.HELP_LINKED,
        messenger,
        name=escape(actor.full_name),
        role=role_label(actor.role),
        role_help=link_texts.ROLE_HELP[actor.role],
    )
    return Screen(text, menu_only())


@dataclass(frozen=True)
class NotificationSettings:
    """What «🔔 Уведомления» shows: the person's choices and when the digest comes."""

    muted: bool
    digest_enabled: bool
    digest_time: time
    zone: str  # in words: «по времени Екатеринбурга, UTC+5» (bot.texts.zones)
    # The messengers the person is bound in, and those their pushes go to (Account.push_to):
    # the choice is offered to a person bound in more than one.
    bound: tuple[str, ...] = ()
    pushed_to: frozenset[str] = frozenset()


PUSH_CHOICES = (
    (
        NotifyAction.PUSH_TELEGRAM,
        frozenset({"telegram"}),
        say(notification_texts.BUTTON_PUSH_TO, "telegram"),
    ),
    (NotifyAction.PUSH_MAX, frozenset({"max"}), say(notification_texts.BUTTON_PUSH_TO, "max")),
    (NotifyAction.PUSH_BOTH, frozenset({"telegram", "max"}), notification_texts.BUTTON_PUSH_BOTH),
)


def push_target(pushed_to: Set[str]) -> str:
    """Where pushes go, in words: «Telegram», «MAX», «Telegram и MAX»."""
    order = {"telegram": 0, "max": 1}
    names = sorted(pushed_to, key=lambda messenger: order.get(messenger, len(order)))
    return notification_texts.PUSH_TARGET_AND.join(messenger_name(m) for m in names)


def notifications(settings: NotificationSettings, actor: Actor) -> Screen:
    """Each button sets the opposite of the current state; the digest only for directors."""
    lines = [notification_texts.TITLE, ""]
    lines.append(notification_texts.PUSHES_OFF if settings.muted else notification_texts.PUSHES_ON)
    director = Role.DIRECTOR in actor.roles or Role.STAFF in actor.roles  # a digest is theirs
    if director:
        lines.append("")
        if settings.digest_enabled:
            at = settings.digest_time.strftime("%H:%M")
            digest_on = (
                notification_texts.DIGEST_ON
                if Role.DIRECTOR in actor.roles
                else notification_texts.STAFF_DIGEST_ON
            )
            lines.append(digest_on.format(time=at, zone=settings.zone))
            if settings.muted:
                lines.append(notification_texts.DIGEST_MUTED)
        else:
            lines.append(
                notification_texts.DIGEST_OFF
                if Role.DIRECTOR in actor.roles
                else notification_texts.STAFF_DIGEST_OFF
            )
    choice: list[Button] = []
    if len(settings.bound) > 1:
        lines += ["", notification_texts.PUSH_TARGET.format(where=push_target(settings.pushed_to))]
        lines.append(notification_texts.PUSH_CHOOSE)
        choice = [
            Button(("• " if target == settings.pushed_to else "") + label, NotifyIntent(action))
            for action, target, label in PUSH_CHOICES
        ]
    buttons = [
        Button(notification_texts.BUTTON_UNMUTE, NotifyIntent(NotifyAction.UNMUTE))
        if settings.muted
        else Button(notification_texts.BUTTON_MUTE, NotifyIntent(NotifyAction.MUTE))
    ]
    if director:
        buttons.append(
            Button(notification_texts.BUTTON_DIGEST_OFF, NotifyIntent(NotifyAction.DIGEST_OFF))
            if settings.digest_enabled
            else Button(notification_texts.BUTTON_DIGEST_ON, NotifyIntent(NotifyAction.DIGEST_ON))
        )
    keyboard = rows(*buttons, back_to_menu())
    if choice:
        keyboard = (tuple(choice), *keyboard)
    return Screen("\n".join(lines), keyboard)


def muted_summary(changes: Changes, since: str, role: Role) -> Screen:
    """On unmuting: what changed meanwhile, with a button to each list of the role."""
    if not changes.any:
        return Screen(notification_texts.MUTED_NOTHING.format(since=since), menu_only())
    lines = [notification_texts.MUTED_SUMMARY.format(since=since)]
    for count, text in (
        (changes.arrived, notification_texts.MUTED_ARRIVED),
        (changes.decisions, notification_texts.MUTED_DECISIONS),
        (changes.comments, notification_texts.MUTED_COMMENTS),
    ):
        if count:
            lines.append("• " + text.format(count=count))
    lines += ["", notification_texts.MUTED_LISTS]
    lists: list[Button] = []
    if role is Role.DIRECTOR:
        lists.append(
            Button(notification_texts.BUTTON_LIST_NEW, ListIntent(status_filter=ListFilter.NEW))
        )
    elif role is Role.STAFF:
        lists.append(
            Button(
                notification_texts.BUTTON_LIST_APPROVED,
                ListIntent(status_filter=ListFilter.APPROVED),
            )
        )
    lists.append(
        Button(notification_texts.BUTTON_LIST_ALL, ListIntent(status_filter=ListFilter.ALL))
    )
    return Screen("\n".join(lines), rows(*lists, back_to_menu()))


def message(text: str, *, menu: bool = False) -> Screen:
    """A plain message, with the way back to the main menu if asked."""
    return Screen(text, menu_only() if menu else ())
