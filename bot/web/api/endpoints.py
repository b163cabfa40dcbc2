"""The integration API's endpoints (docs/API.md; docs/PRODUCT.md "Fixed names")."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.web.api.core import Call, Endpoint, Reply
from bot.web.api.errors import ApiError, field_error
from services import decisions, integration
from services.domain import Source, Status
from services.integration import (
    MAX_ID,
    AccountData,
    ApplicationData,
    Id,
    IntegrationError,
    NumberedApplication,
    OrganizationData,
    UpsertResult,
)
from services.linking import UnknownAccountError, mint_portal_token, unlink_account
from storage.models import Binding

BATCH_MAX = 1000

# -- input beyond the services' models ---------------------------------------------------------


class OrganizationPath(BaseModel):
    id: Id = Field(description="Идентификатор ОО в модуле")


class AccountPath(BaseModel):
    id: Id = Field(description="Идентификатор учётной записи в модуле")


Messenger = Literal["telegram", "max"]


class MessengerPath(BaseModel):
    id: Id = Field(description="Идентификатор учётной записи в модуле")
    messenger: Messenger = Field(description="Мессенджер: telegram или max")


class ApplicationPath(BaseModel):
    number: Id = Field(description="Номер заявки")


class ApplicationsBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applications: list[NumberedApplication] = Field(
        min_length=1, max_length=BATCH_MAX, description=f"От 1 до {BATCH_MAX} заявок, по порядку"
    )


class DecisionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int = Field(0, ge=0, le=MAX_ID, description="Курсор: next_cursor прошлой страницы")
    limit: int = Field(100, ge=1, le=decisions.FEED_MAX_LIMIT, description="Решений на странице")


# -- output -------------------------------------------------------------------------------------


class OrganizationOut(BaseModel):
    id: int
    result: UpsertResult = Field(description="created, updated или unchanged")


class BoundMessenger(BaseModel):
    messenger: Messenger
    linked_at: datetime = Field(description="Когда привязан (UTC)")


class AccountOut(BaseModel):
    id: int
    result: UpsertResult = Field(description="created, updated или unchanged")
    telegram_linked: bool = Field(description="Привязан ли к учётной записи Telegram")
    messengers: list[BoundMessenger] = Field(
        description="Привязанные мессенджеры, по имени мессенджера"
    )


class ApplicationOut(BaseModel):
    number: int
    result: UpsertResult = Field(
        description="created, updated; unchanged — эта версия уже получена; "
        "stale — версия старше сохранённой, запрос проигнорирован"
    )
    version: int = Field(description="Версия, которая хранится теперь")
    status: Status = Field(description="Статус, который хранится теперь")


class BatchOut(BaseModel):
    results: list[ApplicationOut] = Field(description="По заявке на каждую из запроса, по порядку")
    created: int
    updated: int
    unchanged: int
    stale: int


class LinkTokenOut(BaseModel):
    account_id: int
    token: str = Field(description="Одноразовый токен; хранится у бота только его хеш")
    link: str = Field(
        description="Ссылка https://t.me/<бот>?start=<токен> для пользователя (если бот "
        "обслуживает только MAX — ссылка MAX, https://max.ru/<бот>?start=<токен>)"
    )
    links: dict[str, str] = Field(
        description="Ссылка с тем же токеном для каждого настроенного мессенджера: telegram "
        "(https://t.me/<бот>?start=<токен>), max (https://max.ru/<бот>?start=<токен>, если "
        "бот обслуживает MAX или задан MAX_BOT_USERNAME). Привязывается тот мессенджер, "
        "в котором ссылку откроют."
    )
    expires_at: datetime = Field(description="До какого момента ссылка действует (UTC)")


class UnlinkOut(BaseModel):
    account_id: int
    unlinked: bool = Field(description="Была ли привязка (false: Telegram не был привязан)")


class MessengerUnlinkOut(BaseModel):
    account_id: int
    messenger: Messenger
    unlinked: bool = Field(description="Была ли привязка (false: мессенджер не был привязан)")


# -- handlers -----------------------------------------------------------------------------------


def _rejected(error: IntegrationError) -> ApiError:
    status = 409 if error.code == IntegrationError.CONFLICT else 422
    return field_error(status, error.code, error.field, error.message)


def _application_out(outcome: integration.ApplicationOutcome) -> ApplicationOut:
    return ApplicationOut(
        number=outcome.number, result=outcome.result, version=outcome.version, status=outcome.status
    )


async def put_organization(call: Call) -> Reply:
    result = await integration.upsert_organization(
        call.repo, call.path.id, call.body, now=call.context.clock.now()
    )
    return Reply(_created_or_ok(result), OrganizationOut(id=call.path.id, result=result))


async def put_account(call: Call) -> Reply:
    key = call.context.settings.SNILS_HASH_KEY
    try:
        result = await integration.upsert_account(
            call.repo,
            call.path.id,
            call.body,
            snils_key=key.get_secret_value() if key is not None else None,
            now=call.context.clock.now(),
        )
    except IntegrationError as error:
        raise _rejected(error) from None
    bound = await call.repo.links.of_account(call.path.id)
    out = AccountOut(
        id=call.path.id,
        result=result,
        telegram_linked=any(binding.messenger == "telegram" for binding in bound),
        messengers=[
            BoundMessenger(messenger=binding.messenger, linked_at=binding.linked_at)
            for binding in bound
        ],
    )
    return Reply(_created_or_ok(result), out)


async def put_application(call: Call) -> Reply:
    try:
        outcome = await integration.upsert_application(
            call.repo, call.path.number, call.body, now=call.context.clock.now(), source=Source.API
        )
    except IntegrationError as error:
        raise _rejected(error) from None
    return Reply(_created_or_ok(outcome.result), _application_out(outcome))


async def post_applications_batch(call: Call) -> Reply:
    try:
        outcomes = await integration.upsert_applications(
            call.repo, call.body.applications, now=call.context.clock.now(), source=Source.API
        )
    except IntegrationError as error:
        raise _rejected(error) from None
    counts = {result: 0 for result in UpsertResult}
    for outcome in outcomes:
        counts[outcome.result] += 1
    out = BatchOut(
        results=[_application_out(outcome) for outcome in outcomes],
        created=counts[UpsertResult.CREATED],
        updated=counts[UpsertResult.UPDATED],
        unchanged=counts[UpsertResult.UNCHANGED],
        stale=counts[UpsertResult.STALE],
    )
    return Reply(200, out)


async def post_link_token(call: Call) -> Reply:
    context = call.context
    try:
        minted = await mint_portal_token(
            call.repo,
            call.path.id,
            ttl=timedelta(seconds=context.settings.LINK_TOKEN_TTL),
            clock=context.clock,
        )
    except UnknownAccountError:
        raise _no_account(call.path.id) from None
    links = {messenger: build(minted.token) for messenger, build in context.deep_links.items()}
    out = LinkTokenOut(
        account_id=call.path.id,
        token=minted.token,
        link=links.get("telegram") or next(iter(links.values()), ""),
        links=links,
        expires_at=minted.expires_at,
    )
    return Reply(201, out)


async def _revoke(call: Call, messenger: str) -> list[Binding]:
    """Revocation removes what /logout removes, per binding: the binding, the chat's pushes and
    tokens (in this transaction) and its conversation state. A Redis store is cleared before
    the commit: if that fails the request fails whole (500) and the web module repeats it."""
    if await call.repo.accounts.get(call.path.id) is None:
        raise _no_account(call.path.id)
    removed = await unlink_account(
        call.repo, call.path.id, clock=call.context.clock, messenger=messenger
    )
    forget = call.context.forget_conversation
    if forget is not None:
        for binding in removed:
            await forget(binding.messenger, binding.user_id, binding.chat_id)
    return removed


async def delete_telegram(call: Call) -> Reply:
    removed = await _revoke(call, "telegram")
    return Reply(200, UnlinkOut(account_id=call.path.id, unlinked=bool(removed)))


async def delete_messenger(call: Call) -> Reply:
    messenger = call.path.messenger
    removed = await _revoke(call, messenger)
    out = MessengerUnlinkOut(account_id=call.path.id, messenger=messenger, unlinked=bool(removed))
    return Reply(200, out)


async def get_decisions(call: Call) -> Reply:
    query: DecisionsQuery = call.query
    return Reply(200, await decisions.page(call.repo, after=query.after, limit=query.limit))


def _created_or_ok(result: UpsertResult) -> int:
    return 201 if result is UpsertResult.CREATED else 200


def _no_account(account_id: int) -> ApiError:
    return field_error(404, "not_found", "id", f"учётная запись {account_id} не найдена")


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "PUT",
        "/organizations/{id}",
        "putOrganization",
        "Создать или обновить ОО",
        put_organization,
        {201: (OrganizationOut, "ОО создана"), 200: (OrganizationOut, "ОО обновлена или та же")},
        path_model=OrganizationPath,
        body_model=OrganizationData,
    ),
    Endpoint(
        "PUT",
        "/accounts/{id}",
        "putAccount",
        "Создать или обновить учётную запись",
        put_account,
        {
            201: (AccountOut, "Учётная запись создана"),
            200: (AccountOut, "Учётная запись обновлена или та же"),
        },
        path_model=AccountPath,
        body_model=AccountData,
        description="Роли заменяются целиком. esia_oid и snils, если их нет в запросе, остаются "
        "прежними; null их стирает. СНИЛС хранится только как ключевой хеш (SNILS_HASH_KEY); "
        "без ключа СНИЛС не принимается (422).",
        errors={409: "esia_oid или snils уже у другой учётной записи"},
    ),
    Endpoint(
        "PUT",
        "/applications/{number}",
        "putApplication",
        "Создать или обновить заявку",
        put_application,
        {
            201: (ApplicationOut, "Заявка создана"),
            200: (ApplicationOut, "Заявка обновлена, или версия не новее сохранённой"),
        },
        path_model=ApplicationPath,
        body_model=ApplicationData,
        description="Версия упорядочивает обновления: версия старше сохранённой признаётся и "
        "игнорируется (result=stale), та же версия — тоже (unchanged). Новая заявка попадает в "
        "историю и, если она «Не обработана», приходит руководителям её ОО; смена статуса "
        "попадает в историю и приходит заявителю, как решение в Telegram.",
    ),
    Endpoint(
        "POST",
        "/applications:batch",
        "postApplicationsBatch",
        f"Создать или обновить до {BATCH_MAX} заявок разом",
        post_applications_batch,
        {200: (BatchOut, "Все заявки приняты; результат по каждой")},
        body_model=ApplicationsBatch,
        description="Для начальной загрузки и догрузки. Одна транзакция: если хоть одна заявка "
        "неверна, не записывается ничего, а в fields — какая и почему.",
    ),
    Endpoint(
        "POST",
        "/accounts/{id}/link-tokens",
        "postLinkToken",
        "Одноразовая ссылка для привязки мессенджера",
        post_link_token,
        {201: (LinkTokenOut, "Ссылка создана")},
        path_model=AccountPath,
        description="Модуль показывает пользователю ссылку link (Telegram) или ссылку нужного "
        "мессенджера из links; бот привязывает тот мессенджер, в котором ссылку откроют. Ссылка "
        "одноразовая и действует LINK_TOKEN_TTL секунд. Если учётная запись уже привязана к "
        "другому аккаунту этого мессенджера, бот сначала спрашивает его владельца и переносит "
        "привязку, только если тот разрешит.",
        errors={404: "Учётная запись не найдена"},
    ),
    Endpoint(
        "DELETE",
        "/accounts/{id}/telegram",
        "deleteTelegramLink",
        "Отвязать Telegram от учётной записи",
        delete_telegram,
        {200: (UnlinkOut, "Привязки больше нет")},
        path_model=AccountPath,
        description="Удаляет привязку Telegram, как /logout: уведомления этого чата (и "
        "отправленные), неиспользованные ссылки учётной записи и состояние диалога (поиск, "
        "начатый комментарий); чат получает сообщение, что привязка отозвана. После этого "
        "учётную запись можно привязать по новой ссылке, не спрашивая прежний "
        "Telegram-аккаунт. Привязки других мессенджеров остаются.",
        errors={404: "Учётная запись не найдена"},
    ),
    Endpoint(
        "DELETE",
        "/accounts/{id}/messengers/{messenger}",
        "deleteMessengerLink",
        "Отвязать мессенджер от учётной записи",
        delete_messenger,
        {200: (MessengerUnlinkOut, "Привязки этого мессенджера больше нет")},
        path_model=MessengerPath,
        description="То же, что DELETE /accounts/{id}/telegram, для любого мессенджера "
        "(telegram, max): удаляет его привязку, уведомления и состояние диалога его чата; "
        "привязки других мессенджеров остаются. Неизвестный мессенджер — 422.",
        errors={404: "Учётная запись не найдена"},
    ),
    Endpoint(
        "GET",
        "/decisions",
        "getDecisions",
        "Решения, принятые в боте, по курсору",
        get_decisions,
        {200: (decisions.DecisionsPage, "Страница решений, от старых к новым")},
        query_model=DecisionsQuery,
        description="Одобрения, отмены, включения в группу и комментарии, сделанные в Telegram "
        "(и в командной строке), по возрастанию id. Начните с after=0 и передавайте next_cursor.",
    ),
)
