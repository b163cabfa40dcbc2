"""Staff («Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»»): the applications of every organisation, the
director-approved ones first; «👥 Включить в группу» and «❌ Отменить» with a comment (the shared
screens and decisions of handlers.applications), and the staff's own filters of the list by
organisation and by programme.

The organisation and programme chosen are kept in the user's FSM data (`organization`: an id,
`program`: the programme's text) beside the search query; a list drawn with `narrowed` applies
them. Buttons carry only ids: an organisation's id, or for a programme the number of an
application with it, resolved through what the actor may see.
"""

from __future__ import annotations

from dataclasses import replace

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery

from bot import screens
from bot.callbacks import Facet, FacetAction, FacetCb, ListCb
from bot.texts import applications as t
from handlers import applications
from handlers.applications import alert, list_screen, narrowed_names, show_screen, stored_narrowing
from services.domain import Actor, Role
from services.queries import (
    Narrowing,
    organization_choices,
    organization_name,
    program_choices,
    program_of,
)
from storage.repositories import Repositories


async def narrowing_of(state: FSMContext, shown: FacetCb) -> Narrowing:
    """What the list the choice applies to is narrowed to now."""
    return stored_narrowing(await state.get_data()) if shown.narrowed else Narrowing()


async def choices_screen(
    repo: Repositories, actor: Actor, state: FSMContext, shown: FacetCb
) -> screens.Screen:
    narrowing = await narrowing_of(state, shown)
    shown = shown.model_copy(update={"action": FacetAction.CHOOSE, "narrowed": narrowing.is_set})
    status = shown.status_filter.status
    current: int | str | None
    if shown.facet is Facet.ORGANIZATION:
        page = await organization_choices(
            repo, actor, status=status, narrowing=narrowing, page=shown.page
        )
        current = narrowing.organization_id
    else:
        page = await program_choices(
            repo, actor, status=status, narrowing=narrowing, page=shown.page
        )
        current = narrowing.program
    narrowed = await narrowed_names(repo, narrowing)
    return screens.facet_choices(shown.facet, page, shown, current=current, narrowed=narrowed)


async def choose(
    callback: CallbackQuery,
    callback_data: FacetCb,
    repo: Repositories,
    actor: Actor,
    state: FSMContext,
) -> None:
    """«🏫 Организация» / «📚 Программа»: the organisations (programmes) that have such
    applications, a page of them."""
    await callback.answer()
    await show_screen(callback, await choices_screen(repo, actor, state, callback_data))


async def narrow(
    callback: CallbackQuery,
    callback_data: FacetCb,
    repo: Repositories,
    actor: Actor,
    state: FSMContext,
) -> None:
    """A chosen organisation (programme): the list of its applications."""
    narrowing = await narrowing_of(state, callback_data)
    key = callback_data.choice
    if callback_data.facet is Facet.ORGANIZATION:
        found = await organization_name(repo, key) is not None
        narrowing = replace(narrowing, organization_id=key)
    else:
        program = await program_of(repo, actor, key)
        found = program is not None
        narrowing = replace(narrowing, program=program)
    if not found:
        await alert(callback, t.FACET_GONE[callback_data.facet])
        await show_screen(callback, await choices_screen(repo, actor, state, callback_data))
        return
    await callback.answer()
    await state.update_data(organization=narrowing.organization_id, program=narrowing.program)
    shown = ListCb(
        status_filter=callback_data.status_filter, search=callback_data.search, narrowed=True
    )
    await show_screen(callback, await list_screen(repo, actor, state, shown))


async def widen(
    callback: CallbackQuery,
    callback_data: FacetCb,
    repo: Repositories,
    actor: Actor,
    state: FSMContext,
) -> None:
    """«Все организации» / «Все программы»: the list without that filter."""
    await callback.answer()
    narrowing = await narrowing_of(state, callback_data)
    if callback_data.facet is Facet.ORGANIZATION:
        narrowing = replace(narrowing, organization_id=None)
    else:
        narrowing = replace(narrowing, program=None)
    await state.update_data(organization=narrowing.organization_id, program=narrowing.program)
    shown = ListCb(
        status_filter=callback_data.status_filter,
        search=callback_data.search,
        narrowed=narrowing.is_set,
    )
    await show_screen(callback, await list_screen(repo, actor, state, shown))


def build_router() -> Router:
    router = applications.build_router(Role.STAFF)
    callback = router.callback_query
    callback.register(choose, FacetCb.filter(F.action == FacetAction.CHOOSE))
    callback.register(narrow, FacetCb.filter(F.action == FacetAction.SET))
    callback.register(widen, FacetCb.filter(F.action == FacetAction.CLEAR))
    return router
