"""The screens of linking: the welcome of an unlinked user (and the bot-first sign-in button),
the personal-data consent, switching accounts, /logout."""

from __future__ import annotations

from bot import texts
from bot.conversation.intents import ConsentAction, ConsentIntent, LinkAction, LinkIntent
from bot.screens.applications import menu_only
from bot.screens.markup import escape
from bot.screens.screen import Button, Screen, rows
from bot.texts import linking as link_texts
from services.domain import Actor
from services.linking import MessengerAccount, MoveOutcome


def welcome(ttl_minutes: int) -> Screen:
    """To an unlinked user when bot-first sign-in is off: the portal-first way."""
    return Screen(texts.WELCOME_UNLINKED.format(ttl_minutes=ttl_minutes))


def welcome_with_sign_in(ttl_minutes: int, sign_in_url: str) -> Screen:
    """«Войти через Госуслуги»: the service's sign-in page, opened inside the messenger (a
    Mini App), so that the page learns from the messenger who opened it."""
    return Screen(
        link_texts.WELCOME_BOT_FIRST.format(ttl_minutes=ttl_minutes),
        rows(Button(link_texts.SIGN_IN_BUTTON, app_url=sign_in_url)),
    )


def consent() -> Screen:
    return Screen(
        link_texts.CONSENT_TEXT,
        rows(Button(link_texts.CONSENT_ACCEPT, ConsentIntent(ConsentAction.ACCEPT))),
    )


def switch_question(current: str, target: str, token_id: int) -> Screen:
    text = link_texts.SWITCH_QUESTION.format(current=escape(current), target=escape(target))
    return Screen(
        text,
        rows(
            Button(link_texts.SWITCH_CONFIRM, LinkIntent(LinkAction.SWITCH, token_id)),
            Button(link_texts.SWITCH_CANCEL, LinkIntent(LinkAction.KEEP, token_id)),
        ),
    )


def switch_kept(name: str) -> Screen:
    return Screen(link_texts.SWITCH_KEPT.format(name=escape(name)), menu_only())


def move_requested(until: str) -> Screen:
    """To the user who opened a link of an account bound to someone else: what is awaited."""
    return Screen(link_texts.MOVE_REQUESTED.format(until=until))


def move_question(requester: MessengerAccount, until: str, request_id: int) -> Screen:
    """To the bound owner: «Разрешить привязку к другому Telegram-аккаунту?»."""
    account = escape(link_texts.messenger_account(requester))
    return Screen(
        link_texts.MOVE_QUESTION.format(account=account, until=until),
        (
            (
                Button(link_texts.MOVE_ALLOW, LinkIntent(LinkAction.ALLOW_MOVE, request_id)),
                Button(link_texts.MOVE_DENY, LinkIntent(LinkAction.DENY_MOVE, request_id)),
            ),
        ),
    )


def move_outcome(outcome: MoveOutcome, actor: Actor | None) -> Screen:
    """To the user who asked: what became of the request (`actor`: who they are, if allowed)."""
    text = link_texts.MOVE_OUTCOMES[outcome]
    if actor is not None:
        text = text.format(name=escape(actor.full_name), role=actor.role.label)
    return Screen(text)


def logout_question(name: str) -> Screen:
    return Screen(
        link_texts.LOGOUT_QUESTION.format(name=escape(name)),
        rows(
            Button(link_texts.LOGOUT_CONFIRM, LinkIntent(LinkAction.LOGOUT)),
            Button(link_texts.LOGOUT_CANCEL, LinkIntent(LinkAction.STAY)),
        ),
    )


def signed_in(name: str, role_label: str, *, already: bool) -> Screen:
    template = link_texts.ALREADY_SIGNED_IN if already else link_texts.SIGNED_IN
    return Screen(template.format(name=escape(name), role=role_label))
