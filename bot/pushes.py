"""Pushes: an outbox row becomes a Telegram message (text, buttons) when it is sent, by `kind`.

The text is built from the database as it is at send time, so a push never shows stale
buttons for an application someone has already processed. `RENDERERS` maps each kind to its
renderer; a feature adds its own kind with ``@renderer("kind")`` in this module or in a module
imported by it, so the dispatcher knows every kind. A renderer raises `Undeliverable` when the
row can no longer be sent (its application, event or account is gone, the user muted pushes):
the row is then marked failed with that reason instead of being retried.

With HIDE_NAMES_IN_PUSHES pushes carry the number, the programme and the status only; names
and comments stay on the card (SPEC "Personal data and the messenger").
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import keyboards
from bot.callbacks import AppAction, AppCb, MenuAction, MenuCb
from bot.render import TEXT_LIMIT
from bot.screens import local_time, short_name, study_dates
from bot.settings import Settings
from bot.texts import html
from bot.texts import linking as link_texts
from bot.texts import pushes as texts
from bot.texts.linking import CONSENT_VERSION, render_unlinked
from services.domain import Role, Status
from services.linking import (
    CONSENT_KIND,
    MOVE_OUTCOME_KIND,
    MOVE_REQUEST_KIND,
    UNLINKED_KIND,
    MoveOutcome,
    actor_for,
    has_consent,
    move_request,
    requester_of,
)
from services.notifications import NotificationKind
from services.outbox import Undeliverable
from storage.models import Application, ApplicationEvent, OutboxMessage, TelegramLink
from storage.repositories import Repositories

PROGRAM_LENGTH = 200
DIGEST_PROGRAM_LENGTH = 60
DIGEST_NAME_LENGTH = 60
COMMENT_LENGTH = 1500
DIGEST_LINES = 10


@dataclass(frozen=True)
class Push:
    text: str
    markup: InlineKeyboardMarkup | None = None


@dataclass
class PushContext:
    """What a renderer needs: the row, the database at send time, the settings."""

    repo: Repositories
    row: OutboxMessage
    settings: Settings

    @property
    def hide_names(self) -> bool:
        return self.settings.HIDE_NAMES_IN_PUSHES

    async def bound(self) -> TelegramLink:
        """The link of the row's account, still bound to the row's chat."""
        account_id = self.row.account_id
        links = await self.repo.links.by_accounts([account_id]) if account_id is not None else []
        link = links[0] if links else None
        if link is None and (
            account_id is None or await self.repo.accounts.get(account_id) is None
        ):  # a link always has its account: only without one is the account worth a look
            raise Undeliverable("the recipient's account no longer exists")
        if link is None or link.chat_id != self.row.chat_id:
            raise Undeliverable("the recipient's account is no longer linked to this chat")
        return link

    async def recipient(self) -> TelegramLink:
        """The recipient's link, still bound to the row's chat, consent given, not muted."""
        link = await self.bound()
        if link.consent_at is None:
            raise Undeliverable("the recipient has not accepted the personal-data consent")
        if link.muted:
            raise Undeliverable("the recipient muted notifications")
        return link

    async def application(self) -> Application:
        number = self.row.application_number
        application = await self.repo.applications.get(number) if number is not None else None
        if application is None:
            raise Undeliverable(f"application {number} no longer exists")
        return application

    async def event(self) -> ApplicationEvent:
        event_id = self.row.event_id
        event = (
            await self.repo.session.get(ApplicationEvent, event_id)
            if event_id is not None
            else None
        )
        if event is None:
            raise Undeliverable(f"history event {event_id} no longer exists")
        return event


Renderer = Callable[[PushContext], Awaitable[Push]]
RENDERERS: dict[str, Renderer] = {}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the renderer of one outbox kind."""

    def register(function: Renderer) -> Renderer:
        RENDERERS[kind] = function
        return function

    return register


async def render(context: PushContext) -> Push:
    """The message for a row, by its kind; Undeliverable if it cannot or need not be sent."""
    function = RENDERERS.get(context.row.kind)
    if function is None:
        raise Undeliverable(f"no renderer for kind {context.row.kind!r}")
    push = await function(context)
    if visible_length(push.text) > TEXT_LIMIT:
        raise Undeliverable(f"the {context.row.kind} push is longer than {TEXT_LIMIT} characters")
    return push


def visible_length(text: str) -> int:
    """Length of HTML text as Telegram counts it: tags removed, entities decoded."""
    return len(html_module.unescape(re.sub(r"<[^>]*>", "", text)))


# -- pieces --------------------------------------------------------------------------------


def clip(value: str | None, limit: int) -> str:
    """A value for a push, cut to `limit` characters with «…»; «Не указано» if missing."""
    if value is None or not value.strip():
        return texts.NOT_SPECIFIED
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def status_label(code: str | None) -> str:
    return Status(code).label if code else texts.NOT_SPECIFIED


def role_label(code: str | None) -> str:
    return Role(code).label if code else ""


def open_button(number: int) -> list[InlineKeyboardButton]:
    data = AppCb(action=AppAction.OPEN, number=number).pack()
    return [InlineKeyboardButton(text=texts.BUTTON_OPEN, callback_data=data)]


def decision_keyboard(number: int) -> InlineKeyboardMarkup:
    """«✅ Одобрить» «❌ Отменить» and «Подробнее», right in the push."""
    approve = AppCb(action=AppAction.APPROVE, number=number).pack()
    cancel = AppCb(action=AppAction.CANCEL, number=number).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=texts.BUTTON_APPROVE, callback_data=approve),
                InlineKeyboardButton(text=texts.BUTTON_CANCEL, callback_data=cancel),
            ],
            open_button(number),
        ]
    )


def open_keyboard(number: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[open_button(number)])


def applications_keyboard() -> InlineKeyboardMarkup:
    data = MenuCb(action=MenuAction.APPLICATIONS).pack()
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=texts.BUTTON_APPLICATIONS, callback_data=data)]]
    )


def program_line(application: Application) -> str:
    return texts.PROGRAM.format(program=html(clip(application.program, PROGRAM_LENGTH)))


def applicant_line(application: Application) -> str:
    return texts.APPLICANT.format(name=html(application.applicant.full_name))


def actor_line(event: ApplicationEvent) -> str:
    if event.actor_role is None:
        return texts.ACTOR_WEB_MODULE
    return texts.ACTOR.format(name=html(event.actor_name), role=role_label(event.actor_role))


def comment_lines(event: ApplicationEvent, hide_names: bool, hint: str) -> list[str]:
    if not event.comment:
        return []
    if hide_names:
        return [hint]
    return [texts.COMMENT.format(comment=html(clip(event.comment, COMMENT_LENGTH)))]


# -- the kinds of this feature -----------------------------------------------------------


@renderer(NotificationKind.NEW_APPLICATION)
async def new_application(context: PushContext) -> Push:
    """To a director of the applicant's organisation, with the decision buttons."""
    link = await context.recipient()
    application = await context.application()
    account = link.account
    if (
        account.organization_id != application.organization_id
        or Role.DIRECTOR.value not in account.role_codes
    ):
        raise Undeliverable("the recipient is no longer a director of the organisation")
    lines = [texts.NEW_APPLICATION_TITLE.format(number=application.number)]
    if not context.hide_names:
        lines.append(applicant_line(application))
    lines.append(program_line(application))
    if not context.hide_names:
        lines.append(
            texts.STUDY_DATES.format(
                dates=study_dates(application.study_from, application.study_to)
            )
        )
    lines.append(texts.STATUS.format(status=status_label(application.status)))
    if application.status == Status.NEW.value:
        return Push("\n".join(lines), decision_keyboard(application.number))
    lines.append(texts.ALREADY_PROCESSED)
    return Push("\n".join(lines), open_keyboard(application.number))


@renderer(NotificationKind.STATUS_CHANGED)
async def status_changed(context: PushContext) -> Push:
    """To the applicant (and to the directors when the applicant or staff acted)."""
    link = await context.recipient()
    application = await context.application()
    event = await context.event()
    lines = [texts.STATUS_CHANGED_TITLE.format(number=application.number)]
    if not context.hide_names and link.account_id != application.applicant_id:
        lines.append(applicant_line(application))
    lines.append(program_line(application))
    lines.append(
        texts.STATUS_MOVE.format(
            from_status=status_label(event.from_status), to_status=status_label(event.to_status)
        )
    )
    if not context.hide_names:
        lines.append(actor_line(event))
    lines += comment_lines(event, context.hide_names, texts.COMMENT_ON_CARD)
    return Push("\n".join(lines), open_keyboard(application.number))


@renderer(NotificationKind.COMMENT)
async def comment(context: PushContext) -> Push:
    """To the other side of the application: the applicant or the directors."""
    link = await context.recipient()
    application = await context.application()
    event = await context.event()
    lines = [texts.COMMENT_TITLE.format(number=application.number)]
    if not context.hide_names and link.account_id != application.applicant_id:
        lines.append(applicant_line(application))
    lines.append(program_line(application))
    lines.append(texts.STATUS.format(status=status_label(application.status)))
    if not context.hide_names:
        lines.append(actor_line(event))
    lines += comment_lines(event, context.hide_names, texts.COMMENT_TEXT_ON_CARD)
    return Push("\n".join(lines), open_keyboard(application.number))


@renderer(NotificationKind.DIGEST)
async def digest(context: PushContext) -> Push:
    """To a director: the organisation's applications «Не обработана», as they are now."""
    link = await context.recipient()
    if not link.digest_enabled:
        raise Undeliverable("the recipient opted out of the digest")
    account = link.account
    if account.organization_id is None or Role.DIRECTOR.value not in account.role_codes:
        raise Undeliverable("the recipient is no longer a director of an organisation")
    applications = context.repo.applications
    count = await applications.count(
        status=Status.NEW.value, organization_id=account.organization_id
    )
    if count == 0:
        raise Undeliverable("nothing to report: no applications «Не обработана» left")
    oldest = await applications.oldest_in_status(
        status=Status.NEW.value, organization_id=account.organization_id, limit=DIGEST_LINES
    )
    lines = [texts.DIGEST_TITLE, texts.DIGEST_COUNT.format(count=count), ""]
    for application in oldest:
        number = application.number
        program = html(clip(application.program, DIGEST_PROGRAM_LENGTH))
        if context.hide_names:
            lines.append(texts.DIGEST_LINE_NO_NAME.format(number=number, program=program))
        else:
            name = html(clip(short_name(application.applicant.full_name), DIGEST_NAME_LENGTH))
            lines.append(texts.DIGEST_LINE.format(number=number, name=name, program=program))
    if count > len(oldest):
        lines.append(texts.DIGEST_MORE.format(count=count - len(oldest)))
    lines += ["", texts.DIGEST_HINT]
    return Push("\n".join(lines), applications_keyboard())


@renderer(UNLINKED_KIND)
async def unlinked(context: PushContext) -> Push:
    """To a chat whose binding is gone (revoked by the web module, moved to another Telegram
    user): there is no recipient to check, the link was removed on purpose."""
    return Push(render_unlinked(context.row.payload))


@renderer(MOVE_REQUEST_KIND)
async def move_request_question(context: PushContext) -> Push:
    """To the Telegram user an account is bound to: «Разрешить привязку к другому
    Telegram-аккаунту?», naming the asking user by @username and id. Sent whatever the
    consent or muting (it is about the binding itself); not once the request is closed."""
    await context.bound()
    token_id = context.row.payload.get("token")
    request = await move_request(context.repo, token_id) if isinstance(token_id, int) else None
    if request is None or request.account_id != context.row.account_id:
        raise Undeliverable("the move request is closed")
    account = html(link_texts.telegram_account(requester_of(request)))
    until = local_time(request.expires_at, context.settings.zone)
    return Push(
        link_texts.MOVE_QUESTION.format(account=account, until=until),
        keyboards.move_request(request.id),
    )


@renderer(MOVE_OUTCOME_KIND)
async def move_outcome(context: PushContext) -> Push:
    """To the Telegram user who asked for an account bound to someone else: what became of it
    (when allowed, the binding must still be there)."""
    try:
        outcome = MoveOutcome(str(context.row.payload.get("outcome")))
    except ValueError as error:
        raise Undeliverable("unknown move outcome") from error
    text = link_texts.MOVE_OUTCOMES[outcome]
    if outcome is MoveOutcome.ALLOWED:
        actor = actor_for(await context.bound())
        text = text.format(name=html(actor.full_name), role=actor.role.label)
    return Push(text)


@renderer(CONSENT_KIND)
async def consent_screen(context: PushContext) -> Push:
    """The first screen of a binding made from another chat (the owner allowed the move):
    the personal-data consent with «Ознакомился», unless accepted meanwhile."""
    if has_consent(await context.bound(), CONSENT_VERSION):
        raise Undeliverable("the consent is already accepted")
    return Push(link_texts.CONSENT_TEXT, keyboards.consent())
