"""Migration 0003 with real rows: a database written by the Telegram-only schema (0002) upgrades
to bindings per messenger and the bot serves its people as before; the downgrade gives the old
schema back with its data. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import MetaData, Table, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.telegram.sender import TelegramSender
from services.clock import ManualClock
from services.linking import token_hash
from storage.db import create_session_factory
from storage.migrate import downgrade, upgrade
from storage.models import Account, ApplicationEvent, Binding, FsmState, LinkToken, OutboxMessage
from storage.repositories import Repositories
from storage.states import SqlStates, StateKey
from storage.updates import UpdateKey, record_update
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings

T0 = factories.T0
DIRECTOR, APPLICANT, NEWCOMER = 1, 3, 4  # accounts; Telegram users are these + 1000
PUSHED, OLD_BUTTON = 39744, 39745  # applications «Не обработана» of organisation 10
PORTAL_TOKEN = "A" * 32  # a portal-first token minted for the newcomer before the upgrade
SEARCH = {"search": "Войсковая"}


def _tables(connection: Connection) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(connection)
    return dict(metadata.tables)


def _write_0002(connection: Connection, bot_id: int) -> None:
    """What today's main (schema 0002) keeps of a small school, in every table."""
    t = _tables(connection)
    later = T0 + timedelta(minutes=5)

    def add(name: str, *rows: dict[str, Any]) -> None:
        for row in rows:  # one by one: the rows name different columns
            connection.execute(t[name].insert(), row)

    add(
        "organizations",
        {"id": 10, "name": "МАОУ «СОШ № 10»", "municipality": None, "updated_at": T0},
    )
    add(
        "accounts",
        *(
            {"id": id_, "full_name": name, "organization_id": 10, "updated_at": T0}
            for id_, name in (
                (DIRECTOR, "Петров Пётр Петрович"),
                (APPLICANT, "Войсковая Юлия Олеговна"),
                (NEWCOMER, "Байдуганова Александра Юрьевна"),
            )
        ),
    )
    add(
        "account_roles",
        {"account_id": DIRECTOR, "role": "director"},
        {"account_id": DIRECTOR, "role": "listener"},
        {"account_id": APPLICANT, "role": "listener"},
        {"account_id": NEWCOMER, "role": "listener"},
    )
    add(
        "applications",
        *(
            {
                "number": number,
                "applicant_id": APPLICANT,
                "organization_id": 10,
                "program": factories.PROGRAM,
                "status": "new",
                "version": 1,
                "created_at": T0,
                "updated_at": T0,
            }
            for number in (PUSHED, OLD_BUTTON)
        ),
    )
    add(
        "application_events",
        *(
            {
                "application_number": number,
                "actor_name": "Модуль «Организация ДПО»",
                "action": "create",
                "to_status": "new",
                "source": "api",
                "created_at": T0,
            }
            for number in (PUSHED, OLD_BUTTON)
        ),
    )
    link = {"consent_version": "1", "linked_at": T0}
    add(
        "telegram_links",
        {
            **link,
            "id": 1,
            "account_id": DIRECTOR,
            "telegram_user_id": 1001,
            "chat_id": 1001,
            "active_role": "director",
            "consent_at": T0,
            "muted": False,
            "digest_enabled": False,
            "blocked": False,
        },
        {
            **link,
            "id": 2,
            "account_id": APPLICANT,
            "telegram_user_id": 1003,
            "chat_id": 1003,
            "active_role": "listener",
            "consent_at": later,
            "muted": True,
            "digest_enabled": True,
            "blocked": True,
        },
    )
    outbox = {
        "attempts": 0,
        "available_at": T0,
        "created_at": T0,
        "payload": {},
        "event_id": None,
    }
    add(
        "outbox",
        {  # the director's push of a new application, not yet sent
            **outbox,
            "channel": "telegram",
            "kind": "new_application",
            "account_id": DIRECTOR,
            "chat_id": 1001,
            "application_number": PUSHED,
            "state": "pending",
            "telegram_message_id": None,
        },
        {  # the applicant blocked the bot: held until they come back
            **outbox,
            "channel": "telegram",
            "kind": "status_changed",
            "account_id": APPLICANT,
            "chat_id": 1003,
            "application_number": PUSHED,
            "state": "held",
            "telegram_message_id": None,
        },
        {  # an old push, sent
            **outbox,
            "channel": "telegram",
            "kind": "new_application",
            "account_id": DIRECTOR,
            "chat_id": 1001,
            "application_number": OLD_BUTTON,
            "state": "sent",
            "sent_at": T0,
            "telegram_message_id": 77,
        },
        {  # a decision for the web module
            **outbox,
            "channel": "webhook",
            "kind": "decision",
            "account_id": None,
            "chat_id": None,
            "application_number": PUSHED,
            "state": "pending",
            "telegram_message_id": None,
        },
    )
    add(
        "link_tokens",
        {  # minted by the web module for the newcomer
            "token_hash": token_hash(PORTAL_TOKEN),
            "kind": "portal",
            "account_id": NEWCOMER,
            "created_at": T0,
            "expires_at": T0 + timedelta(hours=1),
        },
        {  # a bot-first sign-in a Telegram user asked for
            "token_hash": token_hash("B" * 32),
            "kind": "bot",
            "telegram_user_id": 2000,
            "chat_id": 2000,
            "telegram_username": "stranger",
            "created_at": T0,
            "expires_at": T0 + timedelta(hours=1),
        },
    )
    add("link_failures", {"telegram_user_id": 2000, "created_at": T0})
    add(
        "fsm_states",
        {  # the director's last search, kept for his list
            "bot_id": bot_id,
            "chat_id": 1001,
            "user_id": 1001,
            "thread_id": 0,
            "business_connection_id": "",
            "destiny": "default",
            "state": None,
            "data": SEARCH,
        },
    )
    add("processed_updates", {"update_id": 987654, "received_at": T0})
    add("digest_runs", {"day": T0.date(), "created_at": T0, "recipients": 1})
    add("job_leases", {"name": "digest", "owner": "old-replica", "until": T0})


def _read_0002(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    t = _tables(connection)
    links = t["telegram_links"].c
    tokens = t["link_tokens"].c
    outbox = t["outbox"].c
    return {
        "links": [
            tuple(row)
            for row in connection.execute(
                select(
                    links.account_id,
                    links.telegram_user_id,
                    links.chat_id,
                    links.active_role,
                    links.consent_version,
                    links.muted,
                    links.digest_enabled,
                    links.blocked,
                ).order_by(links.account_id)
            )
        ],
        "tokens": [
            tuple(row)
            for row in connection.execute(
                select(tokens.kind, tokens.telegram_user_id, tokens.telegram_username).order_by(
                    tokens.id
                )
            )
        ],
        "message_ids": [
            tuple(row)
            for row in connection.execute(
                select(outbox.application_number, outbox.telegram_message_id)
                .where(outbox.telegram_message_id.is_not(None))
                .order_by(outbox.id)
            )
        ],
        "updates": [
            tuple(row)
            for row in connection.execute(text("SELECT update_id FROM processed_updates"))
        ],
        "states": [
            tuple(row)
            for row in connection.execute(text("SELECT chat_id, user_id FROM fsm_states"))
        ],
        "failures": [
            tuple(row)
            for row in connection.execute(text("SELECT telegram_user_id FROM link_failures"))
        ],
    }


async def test_a_database_of_the_telegram_only_schema_upgrades_serves_and_downgrades(
    unmigrated_engine: AsyncEngine,
) -> None:
    engine = unmigrated_engine
    clock = ManualClock(T0 + timedelta(minutes=10))
    async with FakeBotAPI() as api:
        for user in (1001, 1003, 1004):
            api.add_user(user, first_name=f"Пользователь{user}")
        bot_id = int(api.token.partition(":")[0])
        await upgrade(engine, "0002")
        async with engine.begin() as connection:
            await connection.run_sync(_write_0002, bot_id)
            before = await connection.run_sync(_read_0002)

        await upgrade(engine)

        session_factory = create_session_factory(engine)
        async with session_factory() as session:
            bindings = list(await session.scalars(select(Binding).order_by(Binding.account_id)))
            assert [
                (b.account_id, b.messenger, b.user_id, b.chat_id, b.blocked) for b in bindings
            ] == [
                (DIRECTOR, "telegram", 1001, 1001, False),
                (APPLICANT, "telegram", 1003, 1003, True),
            ]
            people = {
                account.id: (
                    account.active_role,
                    account.consent_at,
                    account.consent_version,
                    account.muted,
                    account.digest_enabled,
                    account.push_to,
                )
                for account in await session.scalars(select(Account))
            }
            assert people == {
                DIRECTOR: ("director", T0, "1", False, False, None),
                APPLICANT: ("listener", T0 + timedelta(minutes=5), "1", True, True, None),
                NEWCOMER: (None, None, None, False, True, None),
            }
            tokens = list(await session.scalars(select(LinkToken).order_by(LinkToken.id)))
            assert [(t.kind, t.messenger, t.user_id, t.username) for t in tokens] == [
                ("portal", None, None, None),
                ("bot", "telegram", 2000, "stranger"),
            ]
            outbox = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
            assert [(row.channel, row.state, row.message_id) for row in outbox] == [
                ("telegram", "pending", None),
                ("telegram", "held", None),
                ("telegram", "sent", "77"),
                ("webhook", "pending", None),
            ]
            [state] = await session.scalars(select(FsmState))
            assert (state.messenger, state.user_id, state.data) == ("telegram", 1001, SEARCH)
            binding, raw = await SqlStates(session_factory).load(
                session, StateKey(bot_id, 1001, 1001, "telegram")
            )
            assert binding is not None
            assert (binding.account_id, raw.data) == (DIRECTOR, SEARCH)
            assert (
                await Repositories(session).links.count_failures(
                    "telegram", 2000, T0 - timedelta(seconds=1)
                )
                == 1
            )
        # The update handled before the upgrade is still known as handled.
        assert not await record_update(
            session_factory, UpdateKey("telegram", "987654"), clock.now()
        )

        harness = BotHarness(
            api,
            test_settings(api, str(engine.url.render_as_string(hide_password=False))),
            session_factory,
            clock,
        )
        try:
            # The pending push goes out (the held one waits for the applicant to come back) ...
            notifier = TelegramSender(harness.bot, harness.settings).worker(session_factory, clock)
            assert await notifier.drain() == 1
            push = api.last_bot_message(1001)
            assert f"№{PUSHED}" in push.text
            assert api.chat(1003) == []
            # ... and the director approves from buttons as today's main draws them: the new
            # push's, and an old push's of the Telegram-only bot (aiogram's CallbackData).
            await harness.press_data(1001, f"a2:ap:{PUSHED}", push.message_id)
            done = await harness.press(1001, "Без комментария")
            assert f"Заявка №{PUSHED} одобрена" in done.text
            await harness.press_data(1001, f"a:ap:{OLD_BUTTON}:0::n:0:0:0", push.message_id)
            done = await harness.press(1001, "Без комментария")
            assert f"Заявка №{OLD_BUTTON} одобрена" in done.text
            # The newcomer redeems the token minted before the upgrade: bound, consent first.
            reply = await harness.send(1004, f"/start {PORTAL_TOKEN}")
            assert "Ознакомился" in str(reply.reply_markup)
            harness.assert_no_errors()
        finally:
            await harness.close()
        async with session_factory() as session:
            decided = list(
                await session.scalars(
                    select(ApplicationEvent)
                    .where(ApplicationEvent.action == "approve")
                    .order_by(ApplicationEvent.id)
                )
            )
            assert [(e.application_number, e.actor_account_id, e.source) for e in decided] == [
                (PUSHED, DIRECTOR, "telegram"),
                (OLD_BUTTON, DIRECTOR, "telegram"),
            ]
            newcomer = await Repositories(session).links.by_user("telegram", 1004)
            assert newcomer is not None
            assert newcomer.account_id == NEWCOMER

        await downgrade(engine, "0002")
        async with engine.connect() as connection:
            after = await connection.run_sync(_read_0002)
        assert after["links"] == [
            *before["links"],
            (NEWCOMER, 1004, 1004, "listener", None, False, True, False),
        ]
        assert after["tokens"] == [("portal", None, None), ("bot", 2000, "stranger")]
        assert set(after["message_ids"]) > set(before["message_ids"]) == {(OLD_BUTTON, 77)}
        assert set(after["updates"]) > set(before["updates"])
        assert set(after["states"]) >= set(before["states"])
        assert after["failures"] == before["failures"]
