"""The integration API over HTTP: every endpoint's success and error paths, on a real database."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services import decisions, integration
from services.applications import Done, perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from services.linking import snils_hash
from storage.models import (
    Account,
    Application,
    ApplicationEvent,
    Binding,
    LinkToken,
    Organization,
    OutboxMessage,
)
from storage.repositories import Repositories
from tests import factories
from tests.api_support import (
    API_TOKEN,
    AUTH,
    BOT_USERNAME,
    api_settings,
    application_body,
    count,
    counts,
    serve_api,
)
from tests.conftest import BACKENDS
from tests.harness import SNILS_KEY
from tests.linking_support import FULLWIDTH_SNILS

Client = TestClient[Any, Any]


@pytest.fixture
async def client(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[Client]:
    async with serve_api(engine, session_factory, clock, api_settings(database_url)) as client:
        yield client


async def call(
    client: Client, method: str, path: str, body: Any = None, headers: Any = AUTH
) -> tuple[int, Any]:
    response = await client.request(method, path, json=body, headers=headers)
    assert response.content_type == "application/json"
    return response.status, await response.json()


# -- authentication -------------------------------------------------------------------------------

REQUESTS = [
    ("PUT", "/api/v1/organizations/30", {"name": "МБОУ «СОШ № 3»"}),
    ("PUT", "/api/v1/accounts/30", {"full_name": "Новиков Н. Н.", "roles": ["listener"]}),
    ("PUT", "/api/v1/applications/50000", application_body()),
    ("POST", "/api/v1/applications:batch", {"applications": [application_body(number=50001)]}),
    ("POST", "/api/v1/accounts/3/link-tokens", None),
    ("DELETE", "/api/v1/accounts/3/telegram", None),
    ("DELETE", "/api/v1/accounts/3/messengers/telegram", None),
    ("GET", "/api/v1/decisions?after=0", None),
]


async def _snapshot(session_factory: async_sessionmaker[AsyncSession]) -> list[int]:
    models = (Organization, Account, Application, ApplicationEvent, LinkToken, Binding)
    return await counts(session_factory, *models, OutboxMessage)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Нужен заголовок Authorization: Bearer <API_TOKEN>"),
        ({"Authorization": "Bearer wrong-token"}, "Неверный токен API"),
        ({"Authorization": f"Basic {API_TOKEN}"}, "Нужен заголовок Authorization"),
        ({"Authorization": f"Bearer {API_TOKEN}x"}, "Неверный токен API"),
    ],
)
async def test_no_or_wrong_token_is_401_and_writes_nothing(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    message: str,
) -> None:
    before = await _snapshot(session_factory)
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    payload = await response.json()
    assert payload["code"] == "unauthorized"
    assert payload["message"].startswith(message)
    assert await _snapshot(session_factory) == before


@pytest.mark.usefixtures("seeded")
async def test_without_api_token_setting_the_api_is_disabled(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    settings = api_settings(database_url, API_TOKEN=None)
    async with serve_api(engine, session_factory, clock, settings) as client:
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            status, body = await call(client, *REQUESTS[0], headers=headers)
            assert status == 401
            assert body["message"] == "API отключён: в настройках бота не задан API_TOKEN"
    assert await count(session_factory, Organization, Organization.id == 30) == 0


async def test_openapi_document_is_served_without_a_token(client: Client) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/api/v1/organizations/{id}",
        "/api/v1/accounts/{id}",
        "/api/v1/applications/{number}",
        "/api/v1/applications:batch",
        "/api/v1/accounts/{id}/link-tokens",
        "/api/v1/accounts/{id}/telegram",
        "/api/v1/accounts/{id}/messengers/{messenger}",
        "/api/v1/decisions",
    }
    account = document["components"]["schemas"]["AccountData"]
    assert account["properties"]["roles"]["items"]["$ref"].endswith("/Role")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_unknown_address_and_method_are_json_errors(client: Client) -> None:
    status, body = await call(client, "GET", "/api/v1/nothing")
    assert (status, body["code"]) == (404, "not_found")
    response = await client.get("/api/v1/organizations/1", headers=AUTH)
    assert response.status == 405
    assert "PUT" in response.headers["Allow"]
    assert (await response.json())["code"] == "method_not_allowed"


# -- organisations --------------------------------------------------------------------------------


async def test_organization_upsert_is_idempotent(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = {"name": "МАОУ «СОШ № 15» г. Челябинска", "municipality": "г. Челябинск"}
    assert await call(client, "PUT", "/api/v1/organizations/15", body) == (
        201,
        {"id": 15, "result": "created"},
    )
    assert await call(client, "PUT", "/api/v1/organizations/15", body) == (
        200,
        {"id": 15, "result": "unchanged"},
    )
    body["municipality"] = "  "
    assert await call(client, "PUT", "/api/v1/organizations/15", body) == (
        200,
        {"id": 15, "result": "updated"},
    )
    async with session_factory() as session:
        organization = await session.get(Organization, 15)
        assert organization is not None
        assert organization.municipality is None  # blank is «Не указано»


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/api/v1/organizations/15", {}, "name", "обязательное поле"),
        ("/api/v1/organizations/15", {"name": "   "}, "name", "не может быть пустым"),
        ("/api/v1/organizations/15", {"name": "x" * 501}, "name", "не длиннее 500 символов"),
        ("/api/v1/organizations/15", {"name": "a\x00b"}, "name", "недопустимые символы или формат"),
        ("/api/v1/organizations/15", {"name": "x", "inn": "1"}, "inn", "неизвестное поле"),
        ("/api/v1/organizations/15", {"name": 5}, "name", "ожидается строка"),
        ("/api/v1/organizations/0", {"name": "x"}, "id", "должно быть не меньше 1"),
        ("/api/v1/organizations/abc", {"name": "x"}, "id", "ожидается целое число"),
        ("/api/v1/organizations/15", [], "body", "ожидается объект"),
    ],
)
async def test_organization_bad_input_names_the_field(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    path: str,
    body: Any,
    field: str,
    message: str,
) -> None:
    status, payload = await call(client, "PUT", path, body)
    assert status == 422
    assert payload["code"] == "validation_error"
    assert {"field": field, "message": message} in payload["fields"]
    assert payload["message"].startswith(f"{field}: ")
    assert await count(session_factory, Organization) == 0


async def test_body_that_is_not_json_is_400(client: Client) -> None:
    response = await client.put("/api/v1/organizations/1", data=b"{name", headers=AUTH)
    assert response.status == 400
    assert (await response.json())["code"] == "invalid_json"


# -- accounts -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_account_upsert_with_roles_esia_oid_and_snils(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = {
        "full_name": "Новикова Елена Андреевна",
        "organization_id": 10,
        "roles": ["listener", "director", "listener"],
        "esia_oid": "1000123456",
        "snils": "112-233-445 95",
    }
    status, payload = await call(client, "PUT", "/api/v1/accounts/40", body)
    assert (status, payload) == (
        201,
        {"id": 40, "result": "created", "telegram_linked": False, "messengers": []},
    )
    async with session_factory() as session:
        account = await session.get(Account, 40)
        assert account is not None
        assert account.role_codes == ["director", "listener"]
        assert account.snils_hash == snils_hash("11223344595", SNILS_KEY)
        assert "11223344595" not in str(account.__dict__)

    # esia_oid and snils left out keep their values; roles are replaced.
    body = {"full_name": "Новикова Елена Андреевна", "organization_id": 10, "roles": ["listener"]}
    assert (await call(client, "PUT", "/api/v1/accounts/40", body))[1]["result"] == "updated"
    assert (await call(client, "PUT", "/api/v1/accounts/40", body))[1]["result"] == "unchanged"
    async with session_factory() as session:
        account = await session.get(Account, 40)
        assert account is not None
        assert account.role_codes == ["listener"]
        assert account.esia_oid == "1000123456"
        assert account.snils_hash is not None
    # null clears them
    body |= {"esia_oid": None, "snils": None}
    assert (await call(client, "PUT", "/api/v1/accounts/40", body))[1]["result"] == "updated"
    async with session_factory() as session:
        account = await session.get(Account, 40, populate_existing=True)
        assert account is not None
        assert (account.esia_oid, account.snils_hash) == (None, None)

    # a linked account says so
    status, payload = await call(
        client, "PUT", "/api/v1/accounts/3", {"full_name": "Войсковая Юлия Олеговна"}
    )
    assert (status, payload["telegram_linked"]) == (200, True)
    assert payload["messengers"] == [{"messenger": "telegram", "linked_at": "2026-09-01T06:00:00Z"}]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"full_name": "X", "organization_id": 99}, 422, "unknown_reference", "organization_id"),
        ({"full_name": "X", "roles": ["admin"]}, 422, "validation_error", "roles[0]"),
        ({"full_name": "X", "snils": "123"}, 422, "validation_error", "snils"),
        ({"full_name": "X", "snils": FULLWIDTH_SNILS}, 422, "validation_error", "snils"),
        ({"full_name": "X", "esia_oid": "1 2"}, 422, "validation_error", "esia_oid"),
        ({"full_name": "X", "esia_oid": "oid-of-3"}, 409, "conflict", "esia_oid"),
        ({"full_name": "X", "snils": "112 233 445 95"}, 409, "conflict", "snils"),
        ({"roles": ["listener"]}, 422, "validation_error", "full_name"),
    ],
)
async def test_account_errors_name_the_field_and_write_nothing(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    holder = {"full_name": "Войсковая Юлия Олеговна", "organization_id": 10, "roles": ["listener"]}
    holder |= {"esia_oid": "oid-of-3", "snils": "11223344595"}
    assert (await call(client, "PUT", "/api/v1/accounts/3", holder))[0] == 200
    got, payload = await call(client, "PUT", "/api/v1/accounts/41", body)
    assert (got, payload["code"], payload["fields"][0]["field"]) == (status, code, field)
    assert payload["message"].startswith(f"{field}: ")
    assert await count(session_factory, Account, Account.id == 41) == 0


@pytest.mark.usefixtures("seeded")
async def test_a_snils_in_other_digits_is_refused_with_a_clear_message(client: Client) -> None:
    body = {"full_name": "Новикова Елена Андреевна", "snils": FULLWIDTH_SNILS}
    status, payload = await call(client, "PUT", "/api/v1/accounts/41", body)
    assert (status, payload["fields"]) == (
        422,
        [
            {
                "field": "snils",
                "message": "СНИЛС — 11 цифр 0–9, можно с пробелами и дефисами, "
                "например 112-233-445 95",
            }
        ],
    )


@pytest.mark.usefixtures("seeded")
async def test_snils_without_the_hash_key_is_refused(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    settings = api_settings(database_url, SNILS_HASH_KEY=None)
    async with serve_api(engine, session_factory, clock, settings) as client:
        body = {"full_name": "Новикова Е. А.", "snils": "112-233-445 95"}
        status, payload = await call(client, "PUT", "/api/v1/accounts/42", body)
        assert (status, payload["code"]) == (422, "not_configured")
        assert payload["fields"] == [
            {
                "field": "snils",
                "message": "СНИЛС не принят: не задан ключ SNILS_HASH_KEY, без него СНИЛС "
                "не хранится",
            }
        ]
        # without a SNILS the account is fine
        body.pop("snils")
        assert (await call(client, "PUT", "/api/v1/accounts/42", body))[0] == 201


# -- applications ---------------------------------------------------------------------------------


async def _history(session_factory: async_sessionmaker[AsyncSession], number: int) -> list[Any]:
    async with session_factory() as session:
        rows = await Repositories(session).events.for_application(number)
    return [(e.action, e.from_status, e.to_status, e.source, e.actor_name) for e in reversed(rows)]


async def _outbox(session_factory: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    async with session_factory() as session:
        rows = await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(r.channel, r.kind, r.account_id, r.application_number) for r in rows]


@pytest.mark.usefixtures("seeded")
async def test_new_application_is_recorded_and_pushed_to_the_directors(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    status, payload = await call(client, "PUT", "/api/v1/applications/39744", application_body())
    assert (status, payload) == (
        201,
        {"number": 39744, "result": "created", "version": 1, "status": "new"},
    )
    origin = integration.ORIGIN_NAME
    assert await _history(session_factory, 39744) == [("create", None, "new", "api", origin)]
    # both directors of organisation 10, nobody else
    assert await _outbox(session_factory) == [
        ("telegram", "new_application", 1, 39744),
        ("telegram", "new_application", 2, 39744),
    ]
    async with session_factory() as session:
        application = await session.get(Application, 39744)
        assert application is not None
        assert application.group == "Диагностика. Кадровый резерв руководителей"
        assert application.study_to.isoformat() == "2026-09-10"
        assert application.description is None


@pytest.mark.usefixtures("seeded")
async def test_application_created_already_processed_is_not_pushed(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    body = application_body(status="included", created_at="2026-05-02T10:00:00+05:00")
    assert (await call(client, "PUT", "/api/v1/applications/39742", body))[0] == 201
    assert await _outbox(session_factory) == []
    async with session_factory() as session:
        application = await session.get(Application, 39742)
        assert application is not None
        assert application.created_at.isoformat() == "2026-05-02T05:00:00+00:00"


@pytest.mark.usefixtures("seeded")
async def test_versions_order_updates_and_a_status_change_notifies_the_applicant(
    client: Client, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = "/api/v1/applications/39744"
    await call(client, "PUT", path, application_body())
    clock.advance(minutes=5)
    # the same version again: acknowledged, nothing changes
    status, payload = await call(client, "PUT", path, application_body(description="другое"))
    assert (status, payload["result"]) == (200, "unchanged")
    # a newer version with a new status
    body = application_body(version=3, status="approved", description="Описание")
    status, payload = await call(client, "PUT", path, body)
    assert (status, payload) == (
        200,
        {"number": 39744, "result": "updated", "version": 3, "status": "approved"},
    )
    # an older version arriving late: acknowledged as stale, ignored
    status, payload = await call(client, "PUT", path, application_body(version=2, status="new"))
    assert (status, payload) == (
        200,
        {"number": 39744, "result": "stale", "version": 3, "status": "approved"},
    )
    origin = integration.ORIGIN_NAME
    assert await _history(session_factory, 39744) == [
        ("create", None, "new", "api", origin),
        ("approve", "new", "approved", "api", origin),
    ]
    outbox = await _outbox(session_factory)
    assert outbox[2:] == [("telegram", "status_changed", 3, 39744)]
    async with session_factory() as session:
        application = await session.get(Application, 39744)
        assert application is not None
        assert (application.status, application.version) == ("approved", 3)
        assert application.description == "Описание"
    # a newer version without a status change updates fields only, no history, no push
    body = application_body(version=4, status="approved", study_form="Очная")
    assert (await call(client, "PUT", path, body))[1]["result"] == "updated"
    assert len(await _history(session_factory, 39744)) == 2
    assert len(await _outbox(session_factory)) == 3


RANGE = "дата вне допустимого диапазона: от 1970 до 2200 года"


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("changes", "code", "field", "message"),
    [
        ({"applicant_id": 99}, "unknown_reference", "applicant_id", "учётная запись 99 не найдена"),
        ({"organization_id": 99}, "unknown_reference", "organization_id", "организация 99"),
        ({"status": "done"}, "validation_error", "status", "допустимые значения"),
        ({"version": -1}, "validation_error", "version", "должно быть не меньше 0"),
        ({"version": "2"}, "validation_error", "version", "ожидается целое число"),
        ({"study_to": "2026-09-01"}, "validation_error", "study_to", "дата окончания обучения"),
        ({"study_from": "06.09.2026"}, "validation_error", "study_from", "ожидается дата"),
        ({"created_at": "2026-09-01T10:00:00"}, "validation_error", "created_at", "часовой пояс"),
        # before 0001-01-01T00:00Z and after 9999-12-31T23:59Z: no datetime in UTC at all
        ({"created_at": "0001-01-01T00:00:00+01:00"}, "validation_error", "created_at", RANGE),
        ({"created_at": "9999-12-31T23:59:59-01:00"}, "validation_error", "created_at", RANGE),
        ({"created_at": "2201-01-01T00:00:00Z"}, "validation_error", "created_at", RANGE),
        ({"program": "п" * 4001}, "validation_error", "program", "не длиннее 4000 символов"),
    ],
)
async def test_application_errors_name_the_field_and_write_nothing(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    changes: dict[str, Any],
    code: str,
    field: str,
    message: str,
) -> None:
    status, payload = await call(
        client, "PUT", "/api/v1/applications/39744", application_body(**changes)
    )
    assert (status, payload["code"], payload["fields"][0]["field"]) == (422, code, field)
    assert message in payload["fields"][0]["message"]
    assert await counts(session_factory, Application, ApplicationEvent, OutboxMessage) == [0, 0, 0]


@pytest.mark.usefixtures("seeded")
async def test_a_failure_midway_rolls_the_whole_request_back(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(integration, "enqueue_pushes", broken)
    status, payload = await call(client, "PUT", "/api/v1/applications/39744", application_body())
    assert (status, payload["code"]) == (500, "internal_error")
    assert "outbox unavailable" not in payload["message"]
    assert await counts(session_factory, Application, ApplicationEvent) == [0, 0]


# -- batch ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_batch_upserts_in_order(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await call(client, "PUT", "/api/v1/applications/100", application_body(version=5))
    items = [
        application_body(number=100, version=4, status="cancelled"),
        application_body(number=101, applicant_id=4),
        application_body(number=101, applicant_id=4, version=2, status="approved"),
        application_body(number=102, applicant_id=6, organization_id=20, status="included"),
        application_body(number=100, version=5),
    ]
    status, payload = await call(
        client, "POST", "/api/v1/applications:batch", {"applications": items}
    )
    assert status == 200
    assert [(r["number"], r["result"], r["status"]) for r in payload["results"]] == [
        (100, "stale", "new"),
        (101, "created", "new"),
        (101, "updated", "approved"),
        (102, "created", "included"),
        (100, "unchanged", "new"),
    ]
    assert (payload["created"], payload["updated"], payload["unchanged"], payload["stale"]) == (
        2,
        1,
        1,
        1,
    )
    assert await count(session_factory, Application) == 3


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("applications", "field", "message"),
    [
        (
            [application_body(number=1), application_body(number=2, applicant_id=77)],
            "applications[1].applicant_id",
            "учётная запись 77 не найдена",
        ),
        (
            [application_body(number=1), application_body(status="new")],
            "applications[1].number",
            "обязательное поле",
        ),
        (
            [
                application_body(number=1),
                application_body(number=2, created_at="0001-01-01T00:00:00+01:00"),
            ],
            "applications[1].created_at",
            RANGE,
        ),
        ([], "applications", "не меньше 1 элементов"),
        (
            [application_body(number=n) for n in range(1, 1002)],
            "applications",
            "не больше 1000 элементов",
        ),
    ],
)
async def test_batch_with_one_bad_item_writes_nothing(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    applications: list[dict[str, Any]],
    field: str,
    message: str,
) -> None:
    status, payload = await call(
        client, "POST", "/api/v1/applications:batch", {"applications": applications}
    )
    assert status == 422
    assert {"field": field, "message": message} in payload["fields"]
    assert await counts(session_factory, Application, OutboxMessage) == [0, 0]


@pytest.mark.usefixtures("seeded")
async def test_batch_takes_a_thousand(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    items = [
        application_body(number=n, applicant_id=3 + n % 2, status="approved")
        for n in range(1, 1001)
    ]
    status, payload = await call(
        client, "POST", "/api/v1/applications:batch", {"applications": items}
    )
    assert (status, payload["created"]) == (200, 1000)
    assert await count(session_factory, Application) == 1000


async def test_body_over_the_size_limit_is_413(client: Client) -> None:
    response = await client.post(
        "/api/v1/applications:batch",
        data=b"[" + b" " * (33 * 1024 * 1024) + b"]",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["code"] == "payload_too_large"


# -- link tokens and unlinking --------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_link_token_for_an_account(
    client: Client, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    status, payload = await call(client, "POST", "/api/v1/accounts/3/link-tokens")
    assert status == 201
    token = payload["token"]
    assert payload["account_id"] == 3
    assert payload["link"] == f"https://t.me/{BOT_USERNAME}?start={token}"
    assert payload["links"] == {"telegram": payload["link"]}  # MAX_BOT_USERNAME is not set
    assert payload["expires_at"] == (clock.now() + timedelta(minutes=10)).isoformat().replace(
        "+00:00", "Z"
    )
    async with session_factory() as session:
        row = (await session.scalars(select(LinkToken))).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert (row.kind, row.account_id, row.used_at) == ("portal", 3, None)


async def test_link_token_for_an_unknown_account_is_404(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    status, payload = await call(client, "POST", "/api/v1/accounts/77/link-tokens")
    assert (status, payload["code"], payload["fields"][0]["field"]) == (404, "not_found", "id")
    status, payload = await call(client, "POST", "/api/v1/accounts/x/link-tokens")
    assert (status, payload["fields"][0]["field"]) == (422, "id")
    assert await count(session_factory, LinkToken) == 0


@pytest.mark.usefixtures("seeded")
async def test_unlinking_an_account(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert await call(client, "DELETE", "/api/v1/accounts/3/telegram") == (
        200,
        {"account_id": 3, "unlinked": True},
    )
    assert await count(session_factory, Binding, Binding.account_id == 3) == 0
    # the chat is told its binding was revoked
    async with session_factory() as session:
        told = (await session.scalars(select(OutboxMessage))).one()
    assert (told.kind, told.chat_id, told.payload) == ("unlinked", 1003, {"reason": "revoked"})
    assert await call(client, "DELETE", "/api/v1/accounts/3/telegram") == (
        200,
        {"account_id": 3, "unlinked": False},
    )
    status, payload = await call(client, "DELETE", "/api/v1/accounts/77/telegram")
    assert (status, payload["code"]) == (404, "not_found")
    assert await count(session_factory, Binding) == 6


@pytest.mark.usefixtures("seeded")
async def test_unlinking_one_messenger_keeps_the_others(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await factories.store(
        session_factory, factories.binding(3, 5003, messenger="max", chat_id=7003)
    )
    status, payload = await call(
        client, "PUT", "/api/v1/accounts/3", {"full_name": "Войсковая Ю. О."}
    )
    assert [bound["messenger"] for bound in payload["messengers"]] == ["max", "telegram"]
    assert await call(client, "DELETE", "/api/v1/accounts/3/messengers/max") == (
        200,
        {"account_id": 3, "messenger": "max", "unlinked": True},
    )
    async with session_factory() as session:
        [left] = await session.scalars(select(Binding).where(Binding.account_id == 3))
        [told] = await session.scalars(select(OutboxMessage))
        account = await session.get(Account, 3)
    assert (left.messenger, left.user_id) == ("telegram", 1003)
    assert (told.channel, told.kind, told.chat_id) == ("max", "unlinked", 7003)
    assert account is not None
    assert account.consent_at is not None  # still bound in Telegram: the person's consent stays
    assert await call(client, "DELETE", "/api/v1/accounts/3/messengers/max") == (
        200,
        {"account_id": 3, "messenger": "max", "unlinked": False},
    )
    # The last binding goes: what the bot kept of the person goes with it.
    assert (await call(client, "DELETE", "/api/v1/accounts/3/messengers/telegram"))[1] == {
        "account_id": 3,
        "messenger": "telegram",
        "unlinked": True,
    }
    async with session_factory() as session:
        account = await session.get(Account, 3)
    assert account is not None
    assert (account.active_role, account.consent_at, account.consent_version) == (None, None, None)
    status, payload = await call(client, "DELETE", "/api/v1/accounts/3/messengers/signal")
    assert (status, payload["fields"][0]["field"]) == (422, "messenger")
    status, payload = await call(client, "DELETE", "/api/v1/accounts/77/messengers/max")
    assert (status, payload["code"]) == (404, "not_found")


@pytest.mark.usefixtures("seeded")
async def test_link_tokens_answer_with_a_link_per_configured_messenger(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    settings = api_settings(database_url, MAX_BOT_USERNAME="dpo_max_bot")
    async with serve_api(engine, session_factory, clock, settings) as client:
        status, payload = await call(client, "POST", "/api/v1/accounts/4/link-tokens")
    token = payload["token"]
    assert (status, payload["link"]) == (201, f"https://t.me/{BOT_USERNAME}?start={token}")
    assert payload["links"] == {
        "telegram": f"https://t.me/{BOT_USERNAME}?start={token}",
        "max": f"https://max.ru/dpo_max_bot?start={token}",
    }


# -- decisions feed -------------------------------------------------------------------------------


def _actor(account_id: int, name: str, role: Role, organization_id: int | None) -> Actor:
    return Actor(account_id, name, role, frozenset({role}), organization_id)


DIRECTOR = _actor(1, "Петров Пётр Петрович", Role.DIRECTOR, 10)
APPLICANT = _actor(3, "Войсковая Юлия Олеговна", Role.LISTENER, 10)


@pytest.mark.usefixtures("seeded")
async def test_decisions_feed_pages_by_cursor(
    client: Client, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    for number in (1, 2, 3):
        await call(client, "PUT", f"/api/v1/applications/{number}", application_body())
    async with session_factory() as session:
        repo = Repositories(session)
        outcomes = [
            await perform_action(
                repo, DIRECTOR, 1, Action.APPROVE, comment="Одобрено", clock=clock
            ),
            await perform_action(repo, APPLICANT, 2, Action.COMMENT, comment="Вопрос", clock=clock),
            await perform_action(repo, DIRECTOR, 3, Action.CANCEL, clock=clock),
        ]
        await session.commit()
    ids = [outcome.event.id for outcome in outcomes if isinstance(outcome, Done)]
    # a status change from the web module is not a decision
    await call(client, "PUT", "/api/v1/applications/1", application_body(version=2, status="new"))

    status, page = await call(client, "GET", "/api/v1/decisions?after=0&limit=2")
    assert status == 200
    assert [d["id"] for d in page["decisions"]] == ids[:2]
    assert (page["next_cursor"], page["has_more"]) == (ids[1], True)
    first = page["decisions"][0]
    assert first == {
        "id": ids[0],
        "application_number": 1,
        "action": "approve",
        "from_status": "new",
        "to_status": "approved",
        "comment": "Одобрено",
        "actor_account_id": 1,
        "actor_name": "Петров Пётр Петрович",
        "actor_role": "director",
        "source": "telegram",
        "created_at": clock.now().isoformat().replace("+00:00", "Z"),
    }
    status, page = await call(client, "GET", f"/api/v1/decisions?after={ids[1]}")
    assert [d["action"] for d in page["decisions"]] == ["cancel"]
    assert (page["next_cursor"], page["has_more"]) == (ids[2], False)
    status, page = await call(client, "GET", f"/api/v1/decisions?after={ids[2]}")
    assert page == {"decisions": [], "next_cursor": ids[2], "has_more": False}


@pytest.mark.parametrize(
    ("query", "field"),
    [("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit"), ("limit=1001", "limit")],
)
async def test_decisions_feed_bad_query(client: Client, query: str, field: str) -> None:
    status, payload = await call(client, "GET", f"/api/v1/decisions?{query}")
    assert (status, payload["fields"][0]["field"]) == (422, field)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("webhook", [False, True])
async def test_a_decision_is_queued_for_the_webhook_only_when_it_is_configured(
    client: Client,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    webhook: bool,
) -> None:
    await call(client, "PUT", "/api/v1/applications/1", application_body())
    await call(client, "PUT", "/api/v1/applications/1", application_body(version=2, status="new"))
    async with session_factory() as session:
        repo = Repositories(session)
        outcome = await perform_action(
            repo, DIRECTOR, 1, Action.APPROVE, clock=clock, decisions_webhook=webhook
        )
        assert isinstance(outcome, Done)
        await session.commit()
    # a change from the web module itself never goes back to it
    body = application_body(version=3, status="cancelled")
    await call(client, "PUT", "/api/v1/applications/1", body)
    async with session_factory() as session:
        rows = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        ).all()
    assert [(r.kind, r.event_id, r.application_number) for r in rows] == (
        [("decision", outcome.event.id, 1)] if webhook else []
    )


# SQLite serialises writers, so no decision commits out of order there.
@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL: set TEST_DATABASE_URL")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("seeded")
async def test_the_feed_never_skips_a_decision_committed_late(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """On PostgreSQL ids are handed out before commit: decision 1 may commit after decision 2.
    A feed read in between must wait for it rather than move the cursor past it."""
    async with session_factory() as session:
        for number in (1, 2):
            session.add(factories.application(number, 3, 10))
        await session.commit()
    async with session_factory() as slow, session_factory() as fast:
        first = await perform_action(Repositories(slow), DIRECTOR, 1, Action.APPROVE, clock=clock)
        second = await perform_action(Repositories(fast), DIRECTOR, 2, Action.APPROVE, clock=clock)
        assert isinstance(first, Done)
        assert isinstance(second, Done)
        assert first.event.id < second.event.id
        await fast.commit()  # the later id is committed first

        async def read_feed() -> list[int]:
            async with session_factory() as session:
                page = await decisions.page(Repositories(session), after=0, limit=10)
                return [decision.id for decision in page.decisions]

        feed = asyncio.create_task(read_feed())
        await asyncio.sleep(0.2)
        assert not feed.done()  # it waits for the transaction still in flight
        await slow.commit()
        assert await feed == [first.event.id, second.event.id]
