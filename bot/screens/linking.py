"""The screens of linking: the welcome of an unlinked user (and the bot-first sign-in button),
the personal-data consent, switching accounts, /logout."""

from __future__ import annotations

from bot import texts
from bot.conversation.intents import ConsentAction, ConsentIntent, LinkAction, LinkIntent
from bot.screens.applications import menu_only
from bot.screens.markup import escape
from bot.screens.screen import Button, Screen, rows
from bot.texts import linking as link_texts
from bot.texts.domain import role_label
from bot.texts.messengers import messenger_name, say
from services.domain import Actor
from services.linking import MessengerAccount, MoveOutcome

# `messenger` (Peer.messenger): the messenger the screen is shown in, which its texts name.


def welcome(ttl_minutes: int, messenger: str) -> Screen:
    """To an unlinked user when bot-first sign-in is off: the portal-first way."""
    return Screen(say(texts.WELCOME_UNLINKED, messenger, ttl_minutes=ttl_minutes))


def welcome_with_sign_in(ttl_minutes: int, sign_in_url: str, messenger: str) -> Screen:
    """«Войти через Госуслуги»: the service's sign-in page, opened inside the messenger (a
    Mini App), so that the page learns from the messenger who opened it."""
    return Screen(
        say(link_texts.WELCOME_BOT_FIRST, messenger, ttl_minutes=ttl_minutes),
        rows(Button(link_texts.SIGN_IN_BUTTON, app_url=sign_in_url)),
    )


def consent(messenger: str) -> Screen:
    return Screen(
        say(link_texts.CONSENT_TEXT, messenger),
        rows(Button(link_texts.CONSENT_ACCEPT, ConsentIntent(ConsentAction.ACCEPT))),
    )


def consent_pointer(messenger: str) -> Screen:
    """To a message sent before the consent: where the consent is, and a way to open it."""
    return Screen(
        say(link_texts.CONSENT_POINTER, messenger),
        rows(Button(link_texts.CONSENT_SHOW, ConsentIntent(ConsentAction.SHOW))),
    )


def switch_question(current: str, target: str, token_id: int, messenger: str) -> Screen:
    text = say(
        link_texts.SWITCH_QUESTION, messenger, current=escape(current), target=escape(target)
    )
    return Screen(
        text,
        rows(
            Button(link_texts.SWITCH_CONFIRM, LinkIntent(LinkAction.SWITCH, token_id)),
            Button(link_texts.SWITCH_CANCEL, LinkIntent(LinkAction.KEEP, token_id)),
        ),
    )


def switch_kept(name: str) -> Screen:
    return Screen(link_texts.SWITCH_KEPT.format(name=escape(name)), menu_only())


def move_requested(until: str, messenger: str) -> Screen:
    """To the user who opened a link of an account bound to someone else: what is awaited."""
    return Screen(say(link_texts.MOVE_REQUESTED, messenger, until=until))


def add_requested(until: str, elsewhere: tuple[str, ...], messenger: str) -> Screen:
    """To the user who opened the link of an account bound in other messengers only."""
    where = link_texts.messenger_list(elsewhere)
    return Screen(say(link_texts.ADD_REQUESTED, messenger, until=until, elsewhere=where))


def add_question(
    requester: MessengerAccount, until: str, request_id: int, messenger: str
) -> Screen:
    """To the owner of a binding in another messenger: «Разрешить привязку MAX-аккаунта к
    вашей учётной записи?»."""
    account = escape(link_texts.messenger_account(requester))
    asker = messenger_name(requester.messenger)
    text = say(link_texts.ADD_QUESTION, messenger, asker=asker, account=account, until=until)
    return Screen(text, answer_buttons(request_id))


def answer_buttons(request_id: int) -> tuple[tuple[Button, ...], ...]:
    """«Разрешить» / «Запретить» under a request."""
    return (
        (
            Button(link_texts.MOVE_ALLOW, LinkIntent(LinkAction.ALLOW_MOVE, request_id)),
            Button(link_texts.MOVE_DENY, LinkIntent(LinkAction.DENY_MOVE, request_id)),
        ),
    )


def move_question(
    requester: MessengerAccount, until: str, request_id: int, messenger: str
) -> Screen:
    """To the bound owner: «Разрешить привязку к другому Telegram-аккаунту?»."""
    account = escape(link_texts.messenger_account(requester))
    return Screen(
        say(link_texts.MOVE_QUESTION, messenger, account=account, until=until),
        answer_buttons(request_id),
    )


def move_outcome(
    outcome: MoveOutcome,
    actor: Actor | None,
    messenger: str,
    *,
    adding: bool = False,
    by: str = "",
) -> Screen:
    """To the user who asked: what became of the request (`actor`: who they are, if allowed;
    `adding`: the request was to add a binding, answered in the messenger `by`). An allowed
    add whose consent is accepted already leads on to the main menu."""
    name = escape(actor.full_name) if actor is not None else ""
    role = role_label(actor.role) if actor is not None else ""
    texts_by_outcome = link_texts.ADD_OUTCOMES if adding else link_texts.MOVE_OUTCOMES
    text = say(texts_by_outcome[outcome], messenger, name=name, role=role, by=messenger_name(by))
    return Screen(text, menu_only() if adding and actor is not None else ())


def logout_question(name: str, messenger: str) -> Screen:
    return Screen(
        say(link_texts.LOGOUT_QUESTION, messenger, name=escape(name)),
        rows(
            Button(link_texts.LOGOUT_CONFIRM, LinkIntent(LinkAction.LOGOUT)),
            Button(link_texts.LOGOUT_CANCEL, LinkIntent(LinkAction.STAY)),
        ),
    )


def signed_in(name: str, role_label: str, *, already: bool) -> Screen:
    template = link_texts.ALREADY_SIGNED_IN if already else link_texts.SIGNED_IN
    return Screen(template.format(name=escape(name), role=role_label))
