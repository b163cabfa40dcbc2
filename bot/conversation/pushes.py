"""Pushes: an outbox row becomes a screen when it is sent, by `kind`; each messenger's sender
draws the screen its own way.

The push is built from the database as it is at send time, so a push never shows stale
buttons for an application someone has already processed. `RENDERERS` maps each kind to its
renderer; a feature adds its own kind with ``@renderer("kind")`` in this module or in a module
imported by it, so the dispatcher knows every kind. A renderer loads what the push needs
(PushContext) and lays it out with bot/screens/pushes.py; it raises `Undeliverable` when the
row can no longer be sent (its application, event or account is gone, the user muted pushes):
the row is then marked failed with that reason instead of being retried.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import ClassVar, Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.screens import linking as link_screens
from bot.screens import pushes as layouts
from bot.screens.pieces import local_time
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.texts.linking import CONSENT_VERSION, render_unlinked
from services.clock import Clock
from services.domain import Action, Role, Status, own_decision_refusal
from services.linking import (
    CONSENT_KIND,
    MOVE_OUTCOME_KIND,
    MOVE_REQUEST_KIND,
    UNLINKED_KIND,
    MoveOutcome,
    actor_for,
    has_consent,
    move_request,
    request_deciders,
    requester_of,
)
from services.notifications import NotificationKind
from services.outbox import (
    ChatPacer,
    Failed,
    OutboxWorker,
    Outcome,
    RetryPolicy,
    Undeliverable,
)
from services.views import ApplicationView, EventView, application_view, event_view
from storage.models import Account, ApplicationEvent, Binding, OutboxMessage
from storage.repositories import Repositories

DIGEST_LINES = 10


@dataclass
class PushContext:
    """What a renderer needs: the row, the database at send time, the settings."""

    repo: Repositories
    row: OutboxMessage
    settings: Settings

    @property
    def messenger(self) -> str:
        """The messenger the push goes to, whose name its texts say."""
        return self.row.channel

    @property
    def hide_names(self) -> bool:
        return self.settings.HIDE_NAMES_IN_PUSHES

    async def binding(self) -> Binding:
        """The binding of the row's account in the row's messenger, still to the row's chat."""
        account_id, messenger = self.row.account_id, self.row.channel
        binding = (
            await self.repo.links.by_account(account_id, messenger)
            if account_id is not None
            else None
        )
        if binding is None and (
            account_id is None or await self.repo.accounts.get(account_id) is None
        ):  # a binding always has its account: only without one is the account worth a look
            raise Undeliverable("the recipient's account no longer exists")
        if binding is None or binding.chat_id != self.row.chat_id:
            raise Undeliverable("the recipient's account is no longer linked to this chat")
        return binding

    async def bound(self) -> Account:
        """The row's account, still bound to the row's chat."""
        return (await self.binding()).account

    async def recipient(self) -> Account:
        """The recipient's account, still bound to the row's chat, consent given, not muted."""
        account = await self.bound()
        if account.consent_at is None:
            raise Undeliverable("the recipient has not accepted the personal-data consent")
        if account.muted:
            raise Undeliverable("the recipient muted notifications")
        return account

    async def application(self) -> ApplicationView:
        number = self.row.application_number
        application = await self.repo.applications.get(number) if number is not None else None
        if application is None:
            raise Undeliverable(f"application {number} no longer exists")
        return application_view(application)

    async def event(self) -> EventView:
        event_id = self.row.event_id
        event = (
            await self.repo.session.get(ApplicationEvent, event_id)
            if event_id is not None
            else None
        )
        if event is None:
            raise Undeliverable(f"history event {event_id} no longer exists")
        return event_view(event)


Renderer = Callable[[PushContext], Awaitable[Screen]]


class EventLayout(Protocol):
    def __call__(
        self,
        application: ApplicationView,
        event: EventView,
        *,
        to_applicant: bool,
        hide_names: bool,
    ) -> Screen: ...


RENDERERS: dict[str, Renderer] = {}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    """Register the renderer of one outbox kind."""

    def register(function: Renderer) -> Renderer:
        RENDERERS[kind] = function
        return function

    return register


async def render(context: PushContext) -> Screen:
    """The push for a row, by its kind; Undeliverable if it cannot or need not be sent."""
    function = RENDERERS.get(context.row.kind)
    if function is None:
        raise Undeliverable(f"no renderer for kind {context.row.kind!r}")
    try:
        return await function(context)
    except ValueError as error:  # over a messenger's limits (bot/screens/screen.py)
        raise Undeliverable(f"the {context.row.kind} push does not fit: {error}") from None


# -- the kinds of this feature -----------------------------------------------------------


@renderer(NotificationKind.NEW_APPLICATION)
async def new_application(context: PushContext) -> Screen:
    """To a director of the applicant's organisation, with the decision buttons, unless they
    would be refused: his own application, which he may not decide (DIRECTOR_DECIDES_OWN)."""
    account = await context.recipient()
    application = await context.application()
    if (
        account.organization_id != application.organization_id
        or Role.DIRECTOR.value not in account.role_codes
    ):
        raise Undeliverable("the recipient is no longer a director of the organisation")
    as_director = replace(actor_for(account), role=Role.DIRECTOR)
    own = own_decision_refusal(
        as_director,
        Action.APPROVE,
        application.ref,
        self_decisions=context.settings.DIRECTOR_DECIDES_OWN,
    )
    return layouts.new_application(application, hide_names=context.hide_names, own=own is not None)


async def about_event(context: PushContext, layout: EventLayout) -> Screen:
    """A push about one history event, laid out for the applicant or for the other side."""
    account = await context.recipient()
    application = await context.application()
    return layout(
        application,
        await context.event(),
        to_applicant=account.id == application.applicant_id,
        hide_names=context.hide_names,
    )


@renderer(NotificationKind.STATUS_CHANGED)
async def status_changed(context: PushContext) -> Screen:
    """To the applicant (and to the directors when the applicant or staff acted)."""
    return await about_event(context, layouts.status_changed)


@renderer(NotificationKind.COMMENT)
async def comment(context: PushContext) -> Screen:
    """To the other side of the application: the applicant or the directors."""
    return await about_event(context, layouts.comment)


@renderer(NotificationKind.DIGEST)
async def digest(context: PushContext) -> Screen:
    """To a director: the organisation's applications «Не обработана», as they are now."""
    account = await context.recipient()
    if not account.digest_enabled:
        raise Undeliverable("the recipient opted out of the digest")
    if account.organization_id is None or Role.DIRECTOR.value not in account.role_codes:
        raise Undeliverable("the recipient is no longer a director of an organisation")
    applications = context.repo.applications
    count = await applications.count(
        status=Status.NEW.value, organization_id=account.organization_id
    )
    if count == 0:
        raise Undeliverable("nothing to report: no applications left new")
    oldest = await applications.oldest_in_status(
        status=Status.NEW.value, organization_id=account.organization_id, limit=DIGEST_LINES
    )
    views = [application_view(application) for application in oldest]
    return layouts.digest(count, views, hide_names=context.hide_names)


@renderer(NotificationKind.STAFF_DIGEST)
async def staff_digest(context: PushContext) -> Screen:
    """To staff: director-approved applications waiting for «Включить в группу», by
    organisation, as they are now."""
    account = await context.recipient()
    if not account.digest_enabled:
        raise Undeliverable("the recipient opted out of the digest")
    if Role.STAFF.value not in account.role_codes:
        raise Undeliverable("the recipient is no longer staff")
    waiting = await context.repo.applications.count_by_organization(status=Status.APPROVED.value)
    if not waiting:
        raise Undeliverable("nothing to report: no approved applications wait for inclusion")
    return layouts.staff_digest(waiting)


@renderer(UNLINKED_KIND)
async def unlinked(context: PushContext) -> Screen:
    """To a chat whose binding is gone (revoked by the web module, moved to another user of the
    messenger): there is no recipient to check, the binding was removed on purpose."""
    return Screen(render_unlinked(context.row.payload, context.messenger))


@renderer(MOVE_REQUEST_KIND)
async def move_request_question(context: PushContext) -> Screen:
    """To the messenger user an account is bound to: «Разрешить привязку к другому
    аккаунту?» (a move in this messenger), or «Разрешить привязку MAX-аккаунта к вашей учётной
    записи?» (an add in another one), naming the asking user by @username and id. Sent whatever
    the consent or muting (it is about the binding itself); not once the request is closed or
    no longer waits for this chat's answer."""
    binding = await context.binding()
    token_id = context.row.payload.get("token")
    request = await move_request(context.repo, token_id) if isinstance(token_id, int) else None
    if request is None or request.account_id != context.row.account_id:
        raise Undeliverable("the move request is closed")
    deciders, adding = await request_deciders(context.repo, request)
    if binding.id not in {decider.id for decider in deciders}:
        raise Undeliverable("the request no longer waits for this chat's answer")
    until = local_time(request.expires_at, context.settings.zone)
    question = link_screens.add_question if adding else link_screens.move_question
    return question(requester_of(request), until, request.id, context.messenger)


@renderer(MOVE_OUTCOME_KIND)
async def move_outcome(context: PushContext) -> Screen:
    """To the messenger user who asked for an account bound to someone else: what became of
    it (when allowed, the binding must still be there)."""
    payload = context.row.payload
    try:
        outcome = MoveOutcome(str(payload.get("outcome")))
    except ValueError as error:
        raise Undeliverable("unknown move outcome") from error
    adding, by = payload.get("adding") is True, str(payload.get("by") or "")
    actor = actor_for(await context.bound()) if outcome is MoveOutcome.ALLOWED else None
    return link_screens.move_outcome(outcome, actor, context.messenger, adding=adding, by=by)


@renderer(CONSENT_KIND)
async def consent_screen(context: PushContext) -> Screen:
    """The first screen of a binding made from another chat (the owner allowed the move):
    the personal-data consent with «Ознакомился», unless accepted meanwhile."""
    if has_consent(await context.bound(), CONSENT_VERSION):
        raise Undeliverable("the consent is already accepted")
    return link_screens.consent(context.messenger)


A = TypeVar("A")  # a messenger's API: aiogram's Bot, the MAX client

SEND_TIMEOUT = 15.0  # seconds; an unanswered send is retried (and may arrive twice)


@dataclass(frozen=True)
class PushLimits:
    rate: float  # pushes a second overall
    per_chat_interval: float = 0.0  # seconds between two messages in one chat
    # Or the pacer that keeps them apart together with the front end's replies.
    pacer: ChatPacer | None = None


class PushSender(ABC, Generic[A]):
    """A messenger's sender of its outbox rows (services/outbox.py's `Sender`): a row is drawn
    at send time from the database (`render`), then delivered to the row's chat through `api`
    (`deliver`: the messenger's call, its answer classified as an outcome). `worker` is the
    messenger's outbox dispatcher around it."""

    channel: ClassVar[str]  # the outbox rows' messenger

    def __init__(self, api: A, settings: Settings, send_timeout: float = SEND_TIMEOUT) -> None:
        self.api = api
        self.settings = settings
        self.send_timeout = send_timeout

    @abstractmethod
    def limits(self) -> PushLimits:
        """The messenger's limits for pushes."""

    async def prepare(self, repo: Repositories, row: OutboxMessage) -> Screen:
        return await render(PushContext(repo, row, self.settings))

    async def send(self, row: OutboxMessage, prepared: Screen) -> Outcome:
        if row.chat_id is None:
            return Failed("the row names no chat")
        return await self.deliver(row.chat_id, prepared)

    @abstractmethod
    async def deliver(self, chat_id: int, screen: Screen) -> Outcome:
        """Send the push to the chat within `send_timeout`; what became of it."""

    def worker(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        poll_interval: float = 1.0,
    ) -> OutboxWorker[Screen]:
        """The messenger's outbox dispatcher: its pushes `rate` a second overall, paced in
        each chat, each claim leased for NOTIFY_LEASE."""
        limits = self.limits()
        return OutboxWorker(
            session_factory,
            self,
            channel=self.channel,
            clock=clock,
            rate=limits.rate,
            per_chat_interval=limits.per_chat_interval,
            pacer=limits.pacer,
            lease=float(self.settings.NOTIFY_LEASE),
            policy=policy,
            poll_interval=poll_interval,
        )
