"""Applications for every role (SPEC "Screens", steps 5-8 of the seed instruction): the list with
filters, search and pages; the card; decisions (approve, include, cancel) with a comment;
comments; history; the deep link to a card.

One set of handlers serves the director, the applicant and staff: what each may see and do comes
from the actor's role through services (queries.visible_application and list_applications,
domain.check / allowed_actions), decisions go through services.applications.perform_action, and
screens are drawn by bot.screens (the little that differs by role is screens.VIEWS). Each role's
module builds its router with `build_router(role)`, which registers only the decisions the
role has rules for. Every press is checked again against the database: a card drawn before a
restart, a push or a forged button all meet the application as it is now.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot import keyboards, screens
from bot.callbacks import AppAction, AppCb, ListAction, ListCb, ListFilter, MenuAction, MenuCb
from bot.filters import ActiveRole
from bot.render import show
from bot.settings import Settings
from bot.states import AppInput
from bot.texts import applications as t
from bot.texts import html, shorten
from services.applications import (
    Done,
    LostRace,
    Outcome,
    Refused,
    comment_problem,
    normalize_comment,
    perform_action,
    ref,
)
from services.clock import Clock
from services.domain import RULES, Action, Actor, Role, Rule, Status, allowed_actions, check
from services.queries import (
    Narrowing,
    comments_page,
    history_page,
    list_applications,
    organization_name,
    parse_search,
    visible_application,
)
from storage.models import Application, ApplicationEvent
from storage.repositories import Repositories

APP_LINK = r"^app_(\d{1,18})$"  # https://t.me/<bot>?start=app_<number>
ALERT_LIMIT = 200

# Card buttons that start a decision, and the «Без комментария» buttons that make one.
STARTS: dict[AppAction, Action] = {
    AppAction.APPROVE: Action.APPROVE,
    AppAction.INCLUDE: Action.INCLUDE,
    AppAction.CANCEL: Action.CANCEL,
    AppAction.CANCEL_CONFIRMED: Action.CANCEL,
}
CONFIRM_FIRST = {AppAction.CANCEL}  # asks «Отменить заявку?» before the comment
WITHOUT_COMMENT: dict[AppAction, Action] = {
    AppAction.APPROVE_NO_COMMENT: Action.APPROVE,
    AppAction.INCLUDE_NO_COMMENT: Action.INCLUDE,
    AppAction.CANCEL_NO_COMMENT: Action.CANCEL,
}


# --- drawing -------------------------------------------------------------------------------


async def show_screen(event: Message | CallbackQuery, screen: screens.Screen) -> Message | None:
    return await show(event, screen.text, screen.markup)


def home_list(actor: Actor) -> ListCb:
    """The list the main menu opens for the actor's role."""
    return screens.VIEWS[actor.role].home_list()


def stored_narrowing(data: dict[str, Any]) -> Narrowing:
    """The organisation and programme the user chose for the list, from the FSM data."""
    organization, program = data.get("organization"), data.get("program")
    return Narrowing(
        organization_id=organization if isinstance(organization, int) else None,
        program=program if isinstance(program, str) else None,
    )


async def narrowed_names(repo: Repositories, narrowing: Narrowing) -> screens.Narrowed:
    """The chosen organisation's name and programme, as the list's header shows them."""
    organization = None
    if narrowing.organization_id is not None:
        organization = await organization_name(repo, narrowing.organization_id)
    return screens.Narrowed(organization=organization, program=narrowing.program)


async def list_screen(
    repo: Repositories,
    actor: Actor,
    state: FSMContext,
    shown: ListCb,
    note: str | None = None,
) -> screens.Screen:
    """The list as `shown` asks: `shown.search` applies the user's last search query,
    `shown.narrowed` the organisation and programme the user chose."""
    data = await state.get_data()
    query = data.get("search") if shown.search else None
    search = parse_search(query) if isinstance(query, str) else None
    if search is None:
        shown = shown.model_copy(update={"search": False})
    narrowing = stored_narrowing(data) if shown.narrowed else Narrowing()
    if not narrowing.is_set:
        shown = shown.model_copy(update={"narrowed": False})
    page = await list_applications(
        repo,
        actor,
        status=shown.status_filter.status,
        search=search,
        narrowing=narrowing,
        page=shown.page,
    )
    return screens.application_list(
        page,
        shown,
        search.text if search else None,
        note,
        role=actor.role,
        narrowed=await narrowed_names(repo, narrowing),
    )


async def card_screen(
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    application: Application,
    base: AppCb | None = None,
    *,
    note: str | None = None,
    last_change: ApplicationEvent | None = None,
) -> screens.Screen:
    if last_change is None and application.status != Status.NEW.value:
        # Who decided and when: a new application has had no decision to show.
        last_change = await repo.events.last_transition(application.number)
    if base is None:
        base = screens.VIEWS[actor.role].home_card(application.number)
    return screens.application_card(
        application,
        actions=allowed_actions(actor, ref(application)),
        last_change=last_change,
        comments=await repo.events.count_comments(application.number),
        zone=settings.zone,
        base=base,
        note=note,
    )


async def comments_screen(
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    application: Application,
    base: AppCb,
    *,
    page: int = 0,
    note: str | None = None,
) -> screens.Screen:
    return screens.comments(
        application,
        await comments_page(repo, application.number, page),
        screens.card_data(application, base=base),
        can_comment=Action.COMMENT in allowed_actions(actor, ref(application)),
        zone=settings.zone,
        note=note,
    )


def changed_since(shown: AppCb, application: Application) -> str | None:
    """What changed since the screen with the pressed button was drawn, if anything."""
    now = Status(application.status)
    if shown.status is None or shown.status.status is now:
        return None
    return screens.status_changed(shown.status.status, now)


async def alert(callback: CallbackQuery, text: str) -> None:
    """Refuse a press with the reason in an alert (Telegram takes at most 200 characters)."""
    await callback.answer(shorten(text, ALERT_LIMIT), show_alert=True)


async def load(
    callback: CallbackQuery, data: AppCb, repo: Repositories, actor: Actor
) -> Application | None:
    """The pressed application if the actor may see it; otherwise the press is refused."""
    application = await visible_application(repo, actor, data.number)
    if application is None:
        await alert(callback, t.NOT_VISIBLE.format(number=data.number))
    return application


async def drop_prompt(bot: Bot, chat_id: int, data: dict[str, Any]) -> None:
    """Remove the prompt of a finished input; the answer follows the user's text instead."""
    prompt = data.get("prompt")
    if isinstance(prompt, int):
        with contextlib.suppress(TelegramBadRequest):
            await bot.delete_message(chat_id, prompt)


def pending_card(data: dict[str, Any]) -> AppCb | None:
    """The card a pending input belongs to, from the FSM data."""
    packed = data.get("card")
    try:
        return AppCb.unpack(packed) if isinstance(packed, str) else None
    except (TypeError, ValueError):
        return None


def pending_list(data: dict[str, Any]) -> ListCb | None:
    """The list a pending search was asked from, from the FSM data."""
    packed = data.get("back")
    try:
        return ListCb.unpack(packed) if isinstance(packed, str) else None
    except (TypeError, ValueError):
        return None


# --- list and search -----------------------------------------------------------------------


async def open_list(
    callback: CallbackQuery, repo: Repositories, actor: Actor, state: FSMContext
) -> None:
    """«📥 Заявки» («📄 Мои заявки») in the main menu: the role's list, for a director the
    unprocessed applications first, as in the web module."""
    await callback.answer()
    await show_screen(callback, await list_screen(repo, actor, state, home_list(actor)))


async def show_list(
    callback: CallbackQuery,
    callback_data: ListCb,
    repo: Repositories,
    actor: Actor,
    state: FSMContext,
) -> None:
    await callback.answer()
    await show_screen(callback, await list_screen(repo, actor, state, callback_data))


async def clear_search(
    callback: CallbackQuery,
    callback_data: ListCb,
    repo: Repositories,
    actor: Actor,
    state: FSMContext,
) -> None:
    await callback.answer()
    await state.update_data(search=None)
    shown = ListCb(status_filter=callback_data.status_filter, narrowed=callback_data.narrowed)
    await show_screen(callback, await list_screen(repo, actor, state, shown))


async def ask_search(callback: CallbackQuery, callback_data: ListCb, state: FSMContext) -> None:
    await callback.answer()
    back = callback_data.model_copy(update={"action": ListAction.SHOW})
    prompt = await show_screen(callback, screens.search_prompt(back))
    await state.set_state(AppInput.search)
    await state.update_data(prompt=prompt.message_id if prompt else None, back=back.pack())


async def search_input(
    message: Message,
    bot: Bot,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    state: FSMContext,
) -> None:
    """The text after «🔍 Поиск»: the search keeps the organisation and programme chosen."""
    await state.set_state(None)
    data = await state.get_data()
    await drop_prompt(bot, message.chat.id, data)
    back = pending_list(data)
    await search(message, repo, actor, settings, state, narrowed=back is not None and back.narrowed)


async def search(
    message: Message,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    state: FSMContext,
    narrowed: bool = False,
) -> None:
    """A text sent to the bot is a search: a number opens that card, a name lists matches."""
    query = parse_search(message.text or "")
    if query is None:
        await show_screen(message, await list_screen(repo, actor, state, home_list(actor)))
        return
    if query.number is not None:
        application = await visible_application(repo, actor, query.number)
        if application is not None:
            await show_screen(message, await card_screen(repo, actor, settings, application))
            return
    await state.update_data(search=query.text)
    shown = ListCb(status_filter=ListFilter.ALL, search=True, narrowed=narrowed)
    await show_screen(message, await list_screen(repo, actor, state, shown))


# --- card ----------------------------------------------------------------------------------


async def open_card(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
) -> None:
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return
    await callback.answer()
    note = changed_since(callback_data, application)
    screen = await card_screen(repo, actor, settings, application, callback_data, note=note)
    await show_screen(callback, screen)


async def open_card_by_link(
    message: Message,
    command: CommandObject,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
) -> None:
    """/start app_<number>: the deep link to a card, for anyone whose role may see it."""
    number = int((command.args or "").removeprefix("app_"))
    application = await visible_application(repo, actor, number)
    if application is None:
        await message.answer(
            t.NOT_VISIBLE.format(number=number), reply_markup=keyboards.back_to_menu()
        )
        return
    await show_screen(message, await card_screen(repo, actor, settings, application))


async def refuse_on_card(
    callback: CallbackQuery,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    application: Application,
    base: AppCb,
    reason: str,
) -> None:
    """Say why a press changed nothing, and show the card as it is now."""
    await alert(callback, reason)
    screen = await card_screen(repo, actor, settings, application, base, note=html(reason))
    await show_screen(callback, screen)


async def allowed_now(
    callback: CallbackQuery,
    callback_data: AppCb,
    action: Action,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
) -> Application | None:
    """The application, if the action is still possible on what the pressed screen showed."""
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return None
    changed = changed_since(callback_data, application)
    verdict = check(actor, action, ref(application))
    if changed is None and isinstance(verdict, Rule):
        return application
    reason = changed or str(verdict)
    await refuse_on_card(callback, repo, actor, settings, application, callback_data, reason)
    return None


async def start_decision(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    state: FSMContext,
) -> None:
    """«✅ Одобрить» and «👥 Включить в группу» ask for a comment; «❌ Отменить» asks to confirm,
    then for a reason."""
    action = STARTS[callback_data.action]
    application = await allowed_now(callback, callback_data, action, repo, actor, settings)
    if application is None:
        return
    await callback.answer()
    card = screens.card_data(application, base=callback_data)
    if callback_data.action in CONFIRM_FIRST:
        await show_screen(callback, screens.cancel_confirmation(application, card, actor.role))
        return
    prompt = await show_screen(
        callback, screens.decision_prompt(application, action, card, actor.role)
    )
    await state.set_state(AppInput.decision_comment)
    await state.update_data(
        prompt=prompt.message_id if prompt else None, card=card.pack(), decision=action.value
    )


async def decide_without_comment(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    clock: Clock,
) -> None:
    """«Без комментария»: the decision, on the status the prompt was drawn for."""
    action = WITHOUT_COMMENT[callback_data.action]
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return
    outcome = await decide(repo, actor, settings, clock, callback_data, action, None)
    if isinstance(outcome, Done):
        await callback.answer(t.DONE_TOAST[action])
    else:
        await alert(callback, outcome_reason(outcome))
    screen = await outcome_screen(repo, actor, settings, callback_data, action, outcome, None)
    if screen is not None:
        await show_screen(callback, screen)


async def decision_comment_input(
    message: Message,
    bot: Bot,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
) -> None:
    """The comment (or the reason of a cancellation) typed after the prompt."""
    data = await state.get_data()
    card = pending_card(data)
    try:
        action = Action(str(data.get("decision")))
    except ValueError:
        card = None
    if card is None:
        await state.set_state(None)
        await message.answer(t.INPUT_ABORTED)
        return
    comment = normalize_comment(message.text)
    problem = comment_problem(action, comment)
    if problem is not None:
        await message.answer(t.FIX_AND_RESEND.format(problem=problem))
        return
    await state.set_state(None)
    outcome = await decide(repo, actor, settings, clock, card, action, comment)
    await drop_prompt(bot, message.chat.id, data)
    screen = await outcome_screen(repo, actor, settings, card, action, outcome, comment)
    if screen is None:  # the application is gone from the actor's sight meanwhile
        assert not isinstance(outcome, Done)
        screen = screens.Screen(html(outcome_reason(outcome)), keyboards.back_to_menu())
    await show_screen(message, screen)


async def decide(
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    clock: Clock,
    card: AppCb,
    action: Action,
    comment: str | None,
) -> Outcome:
    """The decision through the domain core, expecting the status the screen showed; queued for
    the web module's webhook too when DPO_WEBHOOK_URL is set."""
    expected = card.status.status if card.status is not None else None
    return await perform_action(
        repo,
        actor,
        card.number,
        action,
        comment=comment,
        expected_status=expected,
        clock=clock,
        decisions_webhook=settings.decisions_webhook,
    )


def outcome_reason(outcome: LostRace | Refused) -> str:
    """Why nothing changed: someone was first (and the status now), or the refusal."""
    return outcome.message if isinstance(outcome, LostRace) else outcome.reason


async def outcome_screen(
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    base: AppCb,
    action: Action,
    outcome: Outcome,
    comment: str | None,
) -> screens.Screen | None:
    """The card after a decision: the new status with who decided and when, or, if nothing
    changed, the card as it is now with the reason on top."""
    if isinstance(outcome, Done):
        note = screens.done(action, outcome.application.number, comment is not None, actor.role)
        return await card_screen(
            repo, actor, settings, outcome.application, base, note=note, last_change=outcome.event
        )
    application = await visible_application(repo, actor, base.number)
    if application is None:
        return None
    note = html(outcome_reason(outcome))
    return await card_screen(repo, actor, settings, application, base, note=note)


async def abort_input(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
) -> None:
    """«Отмена» on a prompt: back to the card, nothing changed (the middleware ended the input)."""
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return
    await callback.answer(t.INPUT_ABORTED)
    note = changed_since(callback_data, application) or t.INPUT_ABORTED
    screen = await card_screen(repo, actor, settings, application, callback_data, note=note)
    await show_screen(callback, screen)


async def cancel_command(
    message: Message,
    bot: Bot,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    """/cancel: abandon the pending input and show where it started; nothing changes."""
    if raw_state is None or raw_state not in AppInput:
        await message.answer(t.NOTHING_TO_CANCEL)
        return
    data = await state.get_data()
    await state.set_state(None)
    await drop_prompt(bot, message.chat.id, data)
    if raw_state == AppInput.search.state:
        shown = pending_list(data) or home_list(actor)
        await show_screen(message, await list_screen(repo, actor, state, shown, t.SEARCH_ABORTED))
        return
    card = pending_card(data)
    application = await visible_application(repo, actor, card.number) if card else None
    if card is None or application is None:
        await message.answer(t.INPUT_ABORTED, reply_markup=keyboards.back_to_menu())
        return
    if raw_state == AppInput.comment.state:  # back where «Написать комментарий» was pressed
        screen = await comments_screen(
            repo, actor, settings, application, card, note=t.INPUT_ABORTED
        )
    else:
        screen = await card_screen(repo, actor, settings, application, card, note=t.INPUT_ABORTED)
    await show_screen(message, screen)


async def not_text(message: Message) -> None:
    await message.answer(t.TEXT_ONLY)


# --- comments and history ------------------------------------------------------------------


async def show_comments(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
) -> None:
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return
    await callback.answer()
    screen = await comments_screen(
        repo, actor, settings, application, callback_data, page=callback_data.page
    )
    await show_screen(callback, screen)


async def ask_comment(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    state: FSMContext,
) -> None:
    """«✍️ Написать комментарий»: the next text goes to the other side (services.notifications)."""
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return
    verdict = check(actor, Action.COMMENT, ref(application))
    if not isinstance(verdict, Rule):
        await refuse_on_card(callback, repo, actor, settings, application, callback_data, verdict)
        return
    await callback.answer()
    card = screens.card_data(application, base=callback_data)
    prompt = await show_screen(callback, screens.comment_prompt(application, card, actor.role))
    await state.set_state(AppInput.comment)
    await state.update_data(prompt=prompt.message_id if prompt else None, card=card.pack())


async def comment_input(
    message: Message,
    bot: Bot,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
) -> None:
    data = await state.get_data()
    card = pending_card(data)
    if card is None:
        await state.set_state(None)
        await message.answer(t.INPUT_ABORTED)
        return
    comment = normalize_comment(message.text)
    problem = comment_problem(Action.COMMENT, comment)
    if problem is not None:
        await message.answer(t.FIX_AND_RESEND.format(problem=problem))
        return
    await state.set_state(None)
    outcome = await perform_action(
        repo,
        actor,
        card.number,
        Action.COMMENT,
        comment=comment,
        clock=clock,
        decisions_webhook=settings.decisions_webhook,
    )
    await drop_prompt(bot, message.chat.id, data)
    note = (
        screens.done(Action.COMMENT, card.number, True, actor.role)
        if isinstance(outcome, Done)
        else html(outcome_reason(outcome))
    )
    application = await visible_application(repo, actor, card.number)
    if application is None:
        await message.answer(note, reply_markup=keyboards.back_to_menu())
        return
    await show_screen(
        message, await comments_screen(repo, actor, settings, application, card, note=note)
    )


async def show_history(
    callback: CallbackQuery,
    callback_data: AppCb,
    repo: Repositories,
    actor: Actor,
    settings: Settings,
) -> None:
    application = await load(callback, callback_data, repo, actor)
    if application is None:
        return
    await callback.answer()
    page = await history_page(repo, application.number, callback_data.page)
    card = screens.card_data(application, base=callback_data)
    await show_screen(callback, screens.history(application, page, card, zone=settings.zone))


# --- router --------------------------------------------------------------------------------


def role_actions(role: Role) -> set[Action]:
    """The actions the role has any rule for (services.domain.RULES)."""
    return {rule.action for rule in RULES if rule.role is role}


def build_router(role: Role) -> Router:
    """The applications router of one role (the role's module calls it): the active role is
    checked once, on the router; only the decisions the role has rules for are registered, so
    another role's decision buttons reach the last-resort answer."""
    router = Router(name=role.value)
    router.message.filter(ActiveRole(role))
    router.callback_query.filter(ActiveRole(role))
    actions = role_actions(role)
    starts = [pressed for pressed, action in STARTS.items() if action in actions]
    without_comment = [pressed for pressed, action in WITHOUT_COMMENT.items() if action in actions]

    message = router.message
    message.register(cancel_command, Command("cancel"))
    message.register(open_card_by_link, CommandStart(deep_link=True, magic=F.args.regexp(APP_LINK)))
    message.register(decision_comment_input, AppInput.decision_comment, F.text)
    message.register(comment_input, AppInput.comment, F.text)
    message.register(search_input, AppInput.search, F.text)
    message.register(not_text, StateFilter(AppInput))
    message.register(search, StateFilter(None), F.text, ~F.text.startswith("/"))

    callback = router.callback_query
    callback.register(open_list, MenuCb.filter(F.action == MenuAction.APPLICATIONS))
    callback.register(show_list, ListCb.filter(F.action == ListAction.SHOW))
    callback.register(ask_search, ListCb.filter(F.action == ListAction.SEARCH))
    callback.register(clear_search, ListCb.filter(F.action == ListAction.CLEAR))
    callback.register(open_card, AppCb.filter(F.action == AppAction.OPEN))
    if starts:
        callback.register(start_decision, AppCb.filter(F.action.in_(starts)))
        callback.register(decide_without_comment, AppCb.filter(F.action.in_(without_comment)))
    callback.register(abort_input, AppCb.filter(F.action == AppAction.ABORT))
    callback.register(show_comments, AppCb.filter(F.action == AppAction.COMMENTS))
    if Action.COMMENT in actions:
        callback.register(ask_comment, AppCb.filter(F.action == AppAction.ADD_COMMENT))
    callback.register(show_history, AppCb.filter(F.action == AppAction.HISTORY))
    return router
