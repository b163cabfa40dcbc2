"""Keyboards as pure functions of data."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo

from bot import texts
from bot.callbacks import (
    AppAction,
    AppCb,
    ConsentAction,
    ConsentCb,
    Facet,
    FacetAction,
    FacetCb,
    LinkAction,
    LinkCb,
    ListAction,
    ListCb,
    ListFilter,
    MenuAction,
    MenuCb,
    ProfileAction,
    ProfileCb,
)
from bot.texts import applications as app_texts
from bot.texts import linking as link_texts
from services.domain import Action, Role

Button = InlineKeyboardButton


def button(text: str, data: CallbackData) -> Button:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def single_column(*buttons: InlineKeyboardButton) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[b] for b in buttons])


def sign_in(url: str) -> InlineKeyboardMarkup:
    """The bot-first sign-in: opens the service's page as a Mini App, so that Telegram hands
    the page launch data signed for the user who pressed; the page goes on to Gosuslugi."""
    return single_column(
        InlineKeyboardButton(text=link_texts.SIGN_IN_BUTTON, web_app=WebAppInfo(url=url))
    )


def consent() -> InlineKeyboardMarkup:
    return single_column(button(link_texts.CONSENT_ACCEPT, ConsentCb(action=ConsentAction.ACCEPT)))


def switch_account(token_id: int) -> InlineKeyboardMarkup:
    return single_column(
        button(link_texts.SWITCH_CONFIRM, LinkCb(action=LinkAction.SWITCH, token=token_id)),
        button(link_texts.SWITCH_CANCEL, LinkCb(action=LinkAction.KEEP, token=token_id)),
    )


def move_request(token_id: int) -> InlineKeyboardMarkup:
    """The bound owner's answer to «Разрешить привязку к другому Telegram-аккаунту?»."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(link_texts.MOVE_ALLOW, LinkCb(action=LinkAction.ALLOW_MOVE, token=token_id)),
                button(link_texts.MOVE_DENY, LinkCb(action=LinkAction.DENY_MOVE, token=token_id)),
            ]
        ]
    )


def logout() -> InlineKeyboardMarkup:
    return single_column(
        button(link_texts.LOGOUT_CONFIRM, LinkCb(action=LinkAction.LOGOUT)),
        button(link_texts.LOGOUT_CANCEL, LinkCb(action=LinkAction.STAY)),
    )


def profile() -> InlineKeyboardMarkup:
    return single_column(
        button(link_texts.PROFILE_SWITCH_ROLE, ProfileCb(action=ProfileAction.ROLES)),
        button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME)),
    )


def roles(available: frozenset[Role], active: Role) -> InlineKeyboardMarkup:
    """One button per role of the account, in the order of the Role enum; the active one ticked."""
    rows = [
        button(
            (link_texts.ROLE_CURRENT_MARK if role is active else "") + role.label,
            ProfileCb(action=ProfileAction.SET_ROLE, role=role),
        )
        for role in Role
        if role in available
    ]
    return single_column(*rows, button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME)))


def main_menu(role: Role, count: int) -> InlineKeyboardMarkup:
    """The main menu of the active role; `count` is what waits for the user."""
    if role is Role.DIRECTOR:
        applications = texts.MENU_APPLICATIONS_DIRECTOR.format(count=count)
    elif role is Role.STAFF:
        applications = texts.MENU_APPLICATIONS_STAFF.format(count=count)
    else:
        applications = texts.MENU_APPLICATIONS_LISTENER
    rows = [
        (applications, MenuAction.APPLICATIONS),
        (texts.MENU_NOTIFICATIONS, MenuAction.NOTIFICATIONS),
        (texts.MENU_PROFILE, MenuAction.PROFILE),
        (texts.MENU_HELP, MenuAction.HELP),
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(label, MenuCb(action=action))] for label, action in rows]
    )


def back_to_menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME))]]
    )


# --- application screens (shared by the roles' routers) ------------------------------------


def pager(index: int, pages: int, page_data: Callable[[int], CallbackData]) -> list[Button]:
    """◀ k/n ▶ for a paginated screen; the middle button redraws the page (a refresh)."""
    if pages <= 1:
        return []
    row = []
    if index > 0:
        row.append(button(app_texts.BUTTON_PREVIOUS, page_data(index - 1)))
    row.append(button(app_texts.BUTTON_PAGE.format(page=index + 1, pages=pages), page_data(index)))
    if index < pages - 1:
        row.append(button(app_texts.BUTTON_NEXT, page_data(index + 1)))
    return row


def current(label: str, chosen: bool) -> str:
    """A filter's label, marked when it is the one in force."""
    return app_texts.FILTER_CURRENT.format(label=label) if chosen else label


def application_list(
    rows: Sequence[tuple[str, AppCb]],
    shown: ListCb,
    index: int,
    pages: int,
    *,
    search: bool = True,
    facets: dict[Facet, bool] | None = None,
) -> InlineKeyboardMarkup:
    """A button per application, the pager, the status filters, the organisation and
    programme filters (`facets`: whether each is chosen), search and the way back."""

    def filter_button(status_filter: ListFilter) -> Button:
        label = current(
            app_texts.FILTER_LABELS[status_filter], status_filter is shown.status_filter
        )
        target = ListCb(status_filter=status_filter, search=shown.search, narrowed=shown.narrowed)
        return button(label, target)

    keyboard: list[list[Button]] = [[button(label, data)] for label, data in rows]
    navigation = pager(index, pages, lambda page: shown.model_copy(update={"page": page}))
    if navigation:
        keyboard.append(navigation)
    keyboard.append([filter_button(ListFilter.NEW), filter_button(ListFilter.APPROVED)])
    keyboard.append(
        [
            filter_button(ListFilter.CANCELLED),
            filter_button(ListFilter.INCLUDED),
            filter_button(ListFilter.ALL),
        ]
    )
    if facets is not None:
        keyboard.append(
            [
                button(
                    current(app_texts.BUTTON_FACETS[facet], chosen),
                    FacetCb(
                        action=FacetAction.CHOOSE,
                        facet=facet,
                        status_filter=shown.status_filter,
                        search=shown.search,
                        narrowed=shown.narrowed,
                    ),
                )
                for facet, chosen in facets.items()
            ]
        )
    search_row = []
    if search:
        search_row.append(
            button(app_texts.BUTTON_SEARCH, shown.model_copy(update={"action": ListAction.SEARCH}))
        )
    if shown.search:
        clear = ListCb(
            action=ListAction.CLEAR, status_filter=shown.status_filter, narrowed=shown.narrowed
        )
        search_row.append(button(app_texts.BUTTON_CLEAR_SEARCH, clear))
    if search_row:
        keyboard.append(search_row)
    keyboard.append([button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME))])
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def facet_choices(
    choices: Sequence[tuple[str, int]],
    shown: FacetCb,
    index: int,
    pages: int,
    *,
    any_chosen: bool,
) -> InlineKeyboardMarkup:
    """A button per organisation (programme) with its key; the pager; «Все организации»
    («Все программы»), marked when none is chosen; back to the list."""
    keyboard: list[list[Button]] = [
        [button(label, shown.model_copy(update={"action": FacetAction.SET, "choice": key}))]
        for label, key in choices
    ]
    navigation = pager(index, pages, lambda page: shown.model_copy(update={"page": page}))
    if navigation:
        keyboard.append(navigation)
    everything = current(app_texts.FACET_ALL[shown.facet], not any_chosen)
    keyboard.append([button(everything, shown.model_copy(update={"action": FacetAction.CLEAR}))])
    keyboard.append([button(app_texts.BUTTON_TO_LIST, shown.back_to_list())])
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def application_card(card: AppCb, actions: Sequence[Action], comments: int) -> InlineKeyboardMarkup:
    """The card's buttons: only the decisions the actor may take now, then the tabs."""
    decisions = [
        button(app_texts.BUTTON_ACTIONS[action], card.to(pressed))
        for action, pressed in DECISION_BUTTONS.items()
        if action in actions
    ]
    comments_label = (
        app_texts.BUTTON_COMMENTS_COUNT.format(count=comments)
        if comments
        else app_texts.BUTTON_COMMENTS
    )
    keyboard = [decisions] if decisions else []
    keyboard.append(
        [
            button(comments_label, card.to(AppAction.COMMENTS)),
            button(app_texts.BUTTON_HISTORY, card.to(AppAction.HISTORY)),
        ]
    )
    keyboard.append([button(app_texts.BUTTON_TO_LIST, card.back_to_list())])
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def cancel_confirmation(card: AppCb) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(app_texts.BUTTON_CANCEL_YES, card.to(AppAction.CANCEL_CONFIRMED)),
                button(app_texts.BUTTON_CANCEL_NO, card.to(AppAction.OPEN)),
            ]
        ]
    )


def decision_prompt(card: AppCb, action: Action) -> InlineKeyboardMarkup:
    """«Без комментария» decides at once; «Отмена» goes back to the card."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(app_texts.BUTTON_NO_COMMENT, card.to(WITHOUT_COMMENT[action])),
                button(app_texts.BUTTON_ABORT, card.to(AppAction.ABORT)),
            ]
        ]
    )


def input_prompt(abort: CallbackData) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(app_texts.BUTTON_ABORT, abort)]])


def application_events(
    card: AppCb, view: AppAction, index: int, pages: int, *, can_comment: bool = False
) -> InlineKeyboardMarkup:
    """Comments or history of an application: pager, «Написать комментарий», back to the card."""
    keyboard: list[list[Button]] = []
    navigation = pager(index, pages, lambda page: card.to(view, page=page))
    if navigation:
        keyboard.append(navigation)
    if can_comment:
        keyboard.append([button(app_texts.BUTTON_ADD_COMMENT, card.to(AppAction.ADD_COMMENT))])
    keyboard.append([button(app_texts.BUTTON_TO_CARD, card.to(AppAction.OPEN))])
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


# The card's decision buttons in the order shown (the decision that moves the application on
# first), and what «Без комментария» sends after each.
DECISION_BUTTONS: dict[Action, AppAction] = {
    Action.APPROVE: AppAction.APPROVE,
    Action.INCLUDE: AppAction.INCLUDE,
    Action.CANCEL: AppAction.CANCEL,
}
WITHOUT_COMMENT: dict[Action, AppAction] = {
    Action.APPROVE: AppAction.APPROVE_NO_COMMENT,
    Action.INCLUDE: AppAction.INCLUDE_NO_COMMENT,
    Action.CANCEL: AppAction.CANCEL_NO_COMMENT,
}
