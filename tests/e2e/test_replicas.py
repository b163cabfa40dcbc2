"""Several processes sharing the work (issue 7, "Done when"): two `python -m bot` replicas in
webhook mode and two `python -m bot dispatcher` processes against one PostgreSQL and one Redis.

The Bot API double stands in for Telegram and delivers every update explicitly to one replica's
webhook, the two in turn for each user (some updates to both at once, as a Telegram retry that a
proxy passes to the other replica). 500 linked users — directors, applicants and staff — open the
menu, lists, cards, history and comments, approve and cancel with and without a comment typed as
a text message, and write comments; every text typed into an input reaches the other replica than
the button that asked for it, so the input crosses replicas through Redis. Their decisions write
notifications to the outbox, new applications top it up to 3,000, and the two dispatchers (28
messages a second each, against the double's 120 a second overall and 1 a second per chat) send
them (at Telegram's own 30 a second this test waited two minutes for the limiter, which
tests/integration/test_notifier.py tests at that rate; what counts here is that the work is
shared, exactly once). Each process talks to the double through its own base URL, so every
request is known by the process that made it.

Checked: every update got exactly its expected reply, from exactly one replica, and its id is in
processed_updates once (retries of handled updates, to the other replica, change nothing);
every notification was sent exactly once (the dispatchers' sendMessage calls match the outbox
rows one to one, and neither replica sent any); both dispatchers sent; no process logged an
error or a traceback, and all stop cleanly; a request with a wrong or missing secret gets 401
and is not processed (the same update, delivered properly later, is).

Runs when TEST_DATABASE_URL and TEST_REDIS_URL are set (the database is reset and migrated like
every PostgreSQL test; in Redis only this bot's keys, `fsm:7357001:*`, are touched).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from services.notifications import NotificationKind, enqueue_pushes, notify_new_application
from storage.db import create_engine, create_session_factory
from storage.models import OutboxMessage, ProcessedUpdate
from storage.repositories import Repositories
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, empty_database
from tests.fakes.bot_api import Call, FakeBotAPI, Message
from tests.processes import BotProcess, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (TEST_DATABASE_URL and TEST_REDIS_URL),
        reason="several replicas need PostgreSQL and Redis: set TEST_DATABASE_URL and "
        "TEST_REDIS_URL",
    ),
]

TOKEN = "7357001:replicas-test"  # its own bot id: its Redis keys are fsm:7357001:*
SECRET = "replicas-webhook-secret-0123456789"
REPLICAS = ("replica-1", "replica-2")
DISPATCHERS = ("dispatcher-1", "dispatcher-2")
DISPATCHER_RATE = 28  # NOTIFY_RATE is at most 30; two of them stay within OVERALL_RATE
OVERALL_RATE = 120

ORGS = 60
DIRECTORS_PER_ORG = 2
APPLICANTS_PER_ORG = 6
STAFF = 20
USERS = ORGS * (DIRECTORS_PER_ORG + APPLICANTS_PER_ORG) + STAFF  # 500
NOTIFICATIONS = 3000
TELEGRAM_ID_BASE = 700_000  # a user's Telegram id (and chat id) is this + the account id
GATEKEEPER = 99_001  # a staff account kept for the secret checks, outside the 500
TOP_UP_BASE = 90_000  # numbers of the applications that top the outbox up

ACTING_AT_ONCE = 60  # users with a conversation going at any moment
DUPLICATE_SHARE = 0.25  # of the plain navigation updates, delivered to both replicas
PAUSE = (1.05, 1.3)  # seconds a user waits between actions: over Telegram's 1 a second per chat
REPLY_LIMIT = 90.0  # safety nets against a hang, not speed requirements
SENDING_LIMIT = 300.0
START_LIMIT = 90.0

SCREENS = ("sendMessage", "editMessageText")


# --- the people and their applications --------------------------------------------------------


def director_id(org: int, index: int) -> int:
    return org * 10 + index  # index 1, 2


def applicant_id(org: int, k: int) -> int:
    return org * 10 + 2 + k  # k 1..6


def staff_id(index: int) -> int:
    return 10_000 + index  # index 1..20


def number(org: int, k: int, j: int) -> int:
    """Application j (1, 2) of the org's applicant k."""
    return 50_000 + org * 100 + k * 10 + j


def tg(account_id: int) -> int:
    return TELEGRAM_ID_BASE + account_id


def staff_org(index: int) -> int:
    """Staff member `index` includes applicant 6's first application of this organisation."""
    return index * 3


async def seed(url: str) -> None:
    """60 schools with 2 directors and 6 applicants each, 20 staff, all linked with consent;
    two applications per applicant, the directors' ones newest, one approved in every third
    school for staff to include."""
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            session.add_all(factories.organization(org) for org in range(1, ORGS + 1))
            await session.flush()
            people: list[tuple[int, str, int | None, str]] = []
            for org in range(1, ORGS + 1):
                for index in range(1, DIRECTORS_PER_ORG + 1):
                    people.append(
                        (
                            director_id(org, index),
                            f"Руководитель{org}-{index} Анна Петровна",
                            org,
                            "director",
                        )
                    )
                for k in range(1, APPLICANTS_PER_ORG + 1):
                    people.append(
                        (applicant_id(org, k), f"Педагог{org}-{k} Юлия Олеговна", org, "listener")
                    )
            for index in range(1, STAFF + 1):
                people.append(
                    (staff_id(index), f"Сотрудник{index} Ольга Николаевна", None, "staff")
                )
            people.append((GATEKEEPER, "Привратник Иван Иванович", None, "staff"))
            session.add_all(
                factories.account(account, name, org, role, active_role=role, consent=True)
                for account, name, org, role in people
            )
            await session.flush()
            session.add_all(factories.binding(account, tg(account)) for account, _, _, _ in people)
            approved = {(staff_org(index), 6, 1) for index in range(1, STAFF + 1)}
            for org in range(1, ORGS + 1):
                for k in range(1, APPLICANTS_PER_ORG + 1):
                    for j in (1, 2):
                        # The directors' targets (applicants 1 and 2, first applications) are the
                        # newest, so they are on the first page of «Не обработана».
                        minutes = 600 - k if j == 1 and k <= 2 else k * 2 + j
                        session.add(
                            factories.application(
                                number(org, k, j),
                                applicant_id(org, k),
                                org,
                                "approved" if (org, k, j) in approved else "new",
                                created_at=factories.T0 + timedelta(minutes=minutes),
                            )
                        )
            await session.commit()
    finally:
        await engine.dispose()


# --- what users do ----------------------------------------------------------------------------

Chooser = Callable[[Message], str]


def first_button(message: Message) -> str:
    return message.buttons()[0][0]


def row(application: int) -> Chooser:
    def choose(message: Message) -> str:
        marker = f"№{application} · "
        labels = [label for line in message.buttons() for label in line if marker in label]
        assert labels, f"no row of №{application} in {message.buttons()}"
        return labels[0]

    return choose


def label(text: str) -> Chooser:
    return lambda message: text


@dataclass(frozen=True)
class Step:
    """One action: a text the user sends, or a button pressed on the current screen; `expect`
    is a part of the one screen the bot must answer with."""

    expect: str
    text: str | None = None
    press: Chooser | None = None
    input_text: bool = False  # the text of a comment input (the prompt came just before)
    starts_input: bool = False  # the press that asks for a comment

    @property
    def may_duplicate(self) -> bool:
        return not (self.input_text or self.starts_input)


def send(text: str, expect: str, *, input_text: bool = False) -> Step:
    return Step(expect, text=text, input_text=input_text)


def press(choose: Chooser, expect: str, *, starts_input: bool = False) -> Step:
    return Step(expect, press=choose, starts_input=starts_input)


def director_steps(org: int, index: int) -> list[Step]:
    target = number(org, index, 1)  # director 1 decides on applicant 1's, director 2 on 2's
    opening = [
        send("/menu", "Главное меню"),
        press(first_button, "Статус: «Не обработана»"),
        press(row(target), f"Заявка №{target}"),
    ]
    if org % 2 == 0 and index == 1:
        return [
            *opening,
            press(label("✅ Одобрить"), f"Одобрение заявки №{target}", starts_input=True),
            send("Одобряю, ждём на обучении", f"✅ Заявка №{target} одобрена.", input_text=True),
        ]
    if org % 2 == 0:
        return [
            *opening,
            press(label("❌ Отменить"), f"Отменить заявку №{target}?"),
            press(label("Да, отменить"), f"Отмена заявки №{target}", starts_input=True),
            send("Заявка подана повторно", f"❌ Заявка №{target} отменена.", input_text=True),
        ]
    if index == 1:
        return [
            *opening,
            press(label("✅ Одобрить"), f"Одобрение заявки №{target}"),
            press(label("Без комментария"), f"✅ Заявка №{target} одобрена."),
        ]
    return [
        *opening,
        press(label("💬 Комментарии"), f"Комментарии · заявка №{target}"),
        press(
            label("✍️ Написать комментарий"), f"Комментарий к заявке №{target}", starts_input=True
        ),
        send(
            "Уточните даты обучения",
            f"💬 Комментарий к заявке №{target} отправлен заявителю.",
            input_text=True,
        ),
    ]


def applicant_steps(org: int, k: int) -> list[Step]:
    opening = [send("/menu", "Главное меню"), press(first_button, "📄 Мои заявки")]
    if k <= 2:  # their first application is being decided by a director meanwhile
        own = number(org, k, 2)
        return [
            *opening,
            press(row(own), f"Заявка №{own}"),
            press(label("🕓 История"), f"История действий · заявка №{own}"),
            press(label("◀ К заявке"), f"Заявка №{own}"),
        ]
    own = number(org, k, 1) if k < 6 else number(org, k, 2)
    opening.append(press(row(own), f"Заявка №{own}"))
    if k == 3:
        return [
            *opening,
            press(label("💬 Комментарии"), f"Комментарии · заявка №{own}"),
            press(
                label("✍️ Написать комментарий"), f"Комментарий к заявке №{own}", starts_input=True
            ),
            send(
                "Прошу перенести даты",
                f"💬 Комментарий к заявке №{own} отправлен руководителю ОО.",
                input_text=True,
            ),
        ]
    if k in (4, 5):
        cancel = [
            *opening,
            press(label("❌ Отменить"), f"Отменить заявку №{own}?"),
            press(label("Да, отменить"), f"Отмена заявки №{own}", starts_input=k == 4),
        ]
        if k == 4:
            return [
                *cancel,
                send("Не смогу участвовать", f"❌ Заявка №{own} отменена.", input_text=True),
            ]
        return [*cancel, press(label("Без комментария"), f"❌ Заявка №{own} отменена.")]
    return [
        *opening,
        press(label("💬 Комментарии"), f"Комментарии · заявка №{own}"),
        press(label("◀ К заявке"), f"Заявка №{own}"),
        press(label("◀ К списку"), "📄 Мои заявки"),
    ]


def staff_steps(index: int) -> list[Step]:
    target = number(staff_org(index), 6, 1)
    return [
        send("/menu", "Главное меню"),
        send(str(target), f"Заявка №{target}"),
        press(
            label("👥 Включить в группу"), f"Включение заявки №{target} в группу", starts_input=True
        ),
        send(
            "Группа Д-12, начало в 10:00",
            f"👥 Заявка №{target} включена в группу.",
            input_text=True,
        ),
    ]


@dataclass(frozen=True)
class User:
    account_id: int
    steps: list[Step]

    @property
    def chat(self) -> int:
        return tg(self.account_id)


def everyone() -> list[User]:
    users = [
        User(director_id(org, index), director_steps(org, index))
        for org in range(1, ORGS + 1)
        for index in range(1, DIRECTORS_PER_ORG + 1)
    ]
    users += [
        User(applicant_id(org, k), applicant_steps(org, k))
        for org in range(1, ORGS + 1)
        for k in range(1, APPLICANTS_PER_ORG + 1)
    ]
    users += [User(staff_id(index), staff_steps(index)) for index in range(1, STAFF + 1)]
    assert len(users) == USERS
    return users


# --- the processes ----------------------------------------------------------------------------


def digest_far_from_now(zone: str = "Asia/Yekaterinburg") -> str:
    """A DIGEST_TIME half a day away, so no digest is written during the test."""
    later = datetime.now(ZoneInfo(zone)) + timedelta(hours=12)
    return later.strftime("%H:%M")


@dataclass
class Process:
    """One process of the deployment, by name; a replica has its web port."""

    name: str
    bot: BotProcess
    port: int | None = None

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram/webhook"

    def stderr(self) -> str:
        return self.bot.stderr()


async def start(name: str, args: list[str], env_values: dict[str, str], workdir: Path) -> Process:
    bot = await BotProcess.start(workdir / name, *args, **env_values)
    port = env_values.get("WEB_PORT")
    return Process(name, bot, port=int(port) if port else None)


async def start_all(api: FakeBotAPI, database_url: str, workdir: Path) -> list[Process]:
    assert TEST_REDIS_URL is not None
    common = {
        "BOT_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
        "REDIS_URL": TEST_REDIS_URL,
        "SNILS_HASH_KEY": "replicas-snils-key-0123456789abcdef",
        "DIGEST_TIME": digest_far_from_now(),
        "LOG_LEVEL": "INFO",
    }
    processes = []
    for name in REPLICAS:
        port = free_port()
        values = {
            **common,
            "TELEGRAM_API_URL": api.url_for(name),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WEBHOOK_SECRET": SECRET,
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "NOTIFY_IN_BOT": "false",  # the dispatchers send
        }
        processes.append(await start(name, [], values, workdir))
    for name in DISPATCHERS:
        values = {
            **common,
            "TELEGRAM_API_URL": api.url_for(name),
            "NOTIFY_RATE": str(DISPATCHER_RATE),
        }
        processes.append(await start(name, ["dispatcher"], values, workdir))
    return processes


async def wait_until_serving(api: FakeBotAPI, processes: list[Process]) -> None:
    """The replicas answer /healthz and have set the webhook."""
    deadline = time.monotonic() + START_LIMIT
    replicas = [p for p in processes if p.name in REPLICAS]
    async with aiohttp.ClientSession() as http:
        for replica in replicas:
            while True:
                for process in processes:
                    if process.bot.returncode is not None:
                        raise AssertionError(f"{process.name} exited: {process.stderr()}")
                webhook_set = any(
                    call.via == replica.name and call.ok for call in api.calls_of("setWebhook")
                )
                if webhook_set:
                    try:
                        async with http.get(f"http://127.0.0.1:{replica.port}/healthz") as answer:
                            if answer.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                assert time.monotonic() < deadline, (
                    f"{replica.name} did not start: {replica.stderr()}"
                )
                await asyncio.sleep(0.2)


async def stop_all(processes: list[Process]) -> dict[str, int | None]:
    for process in processes:
        process.bot.ask_to_stop()
    codes: dict[str, int | None] = {}
    for process in processes:
        try:
            codes[process.name] = await process.bot.terminate(40)
        except AssertionError:  # it did not stop on SIGTERM and was killed
            codes[process.name] = None
    return codes


def problems_in(process: Process) -> list[str]:
    return [
        line
        for line in process.stderr().splitlines()
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
    ]


# --- watching the double ----------------------------------------------------------------------


@dataclass
class Delivery:
    """One update as it was delivered, and where its replies are in the double's calls."""

    user: User
    step: Step
    update: dict[str, Any]
    replicas: tuple[str, ...]
    mark: int  # len(api.calls) when it was delivered
    query_id: str | None = None
    delivered_at: float = 0.0  # monotonic seconds, like Call.time
    end: int | None = None  # the mark of the user's next delivery
    screen: Call | None = None

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


@dataclass
class Watcher:
    """Indexes the double's calls by chat as they arrive, so users wait for their replies."""

    api: FakeBotAPI
    by_chat: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    events: dict[int, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    query_chat: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api.observe(self.on_call)

    def chat_of(self, call: Call) -> int | None:
        if call.method == "answerCallbackQuery":
            return self.query_chat.get(str(call.params.get("callback_query_id")))
        chat = call.params.get("chat_id")
        return (
            int(chat) if isinstance(chat, int | str) and str(chat).lstrip("-").isdigit() else None
        )

    def on_call(self, call: Call) -> None:
        chat = self.chat_of(call)
        if chat is not None:
            self.by_chat[chat].append(len(self.api.calls) - 1)
            self.events[chat].set()

    def calls(self, chat: int, start: int, end: int | None = None) -> list[Call]:
        return [
            self.api.calls[i] for i in self.by_chat[chat] if i >= start and (end is None or i < end)
        ]

    async def screen(self, chat: int, mark: int) -> Call:
        """The first screen a replica showed in the chat after `mark`."""
        deadline = asyncio.get_running_loop().time() + REPLY_LIMIT
        while True:
            for call in self.calls(chat, mark):
                if call.method in SCREENS and call.ok and call.via in REPLICAS:
                    return call
            event = self.events[chat]
            event.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"no reply in chat {chat} after call {mark}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


def visible_text(call: Call) -> str:
    result = call.result
    assert isinstance(result, dict)
    return str(result["text"])


# --- the test ---------------------------------------------------------------------------------


async def clear_redis_keys() -> None:
    assert TEST_REDIS_URL is not None
    redis = Redis.from_url(TEST_REDIS_URL)
    try:
        bot_id = TOKEN.split(":", 1)[0]
        keys = [key async for key in redis.scan_iter(f"fsm:{bot_id}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def processed_ids(url: str) -> list[int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            keys = await connection.scalars(
                select(ProcessedUpdate.key).where(ProcessedUpdate.messenger == "telegram")
            )
            return [int(key) for key in keys]
    finally:
        await engine.dispose()


async def top_up(url: str) -> tuple[int, int]:
    """New applications whose pushes bring the Telegram outbox to NOTIFICATIONS rows; returns
    (rows the users' actions wrote, rows added)."""
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            written = int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.channel == "telegram")
                )
                or 0
            )
            repo = Repositories(session)
            missing = NOTIFICATIONS - written
            now = datetime.now(ZoneInfo("UTC"))
            applications = []
            for i in range(missing // DIRECTORS_PER_ORG):
                org = i % ORGS + 1
                application = factories.application(
                    TOP_UP_BASE + i,
                    applicant_id(org, i % APPLICANTS_PER_ORG + 1),
                    org,
                    "new",
                    created_at=now,
                    updated_at=now,
                )
                session.add(application)
                applications.append(application)
            await session.flush()
            added = 0
            for application in applications:
                added += await notify_new_application(repo, application, now=now)
            if missing % DIRECTORS_PER_ORG:
                added += await enqueue_pushes(
                    repo,
                    kind=NotificationKind.NEW_APPLICATION,
                    account_ids=[director_id(1, 1)],
                    application_number=applications[0].number,
                    event_id=None,
                    now=now,
                )
            await session.commit()
            return written, added
    finally:
        await engine.dispose()


async def outbox_rows(url: str) -> list[OutboxMessage]:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            rows = await session.scalars(
                select(OutboxMessage).where(OutboxMessage.channel == "telegram")
            )
            return list(rows)
    finally:
        await engine.dispose()


async def wait_until_sent(url: str, processes: list[Process]) -> None:
    deadline = time.monotonic() + SENDING_LIMIT
    engine = create_engine(url)
    try:
        while True:
            async with engine.connect() as connection:
                result = await connection.execute(
                    select(OutboxMessage.state, func.count())
                    .where(OutboxMessage.channel == "telegram")
                    .group_by(OutboxMessage.state)
                )
                states = {state: count for state, count in result.tuples()}
            assert not states.get("failed"), states
            assert not states.get("held"), states
            if set(states) == {"sent"}:
                return
            for process in processes:
                if process.bot.returncode is not None:
                    raise AssertionError(f"{process.name} exited: {process.stderr()}")
            assert time.monotonic() < deadline, f"notifications still unsent: {states}"
            await asyncio.sleep(1.0)
    finally:
        await engine.dispose()


class Driver:
    """Users acting through the double, each update delivered to a chosen replica (or both)."""

    def __init__(self, api: FakeBotAPI, watcher: Watcher, replicas: dict[str, Process]) -> None:
        self.api = api
        self.watcher = watcher
        self.replicas = replicas
        self.deliveries: list[Delivery] = []
        self.rng = random.Random(7)

    async def deliver(self, update: dict[str, Any], to: tuple[str, ...]) -> None:
        statuses = await asyncio.gather(
            *(self.api.deliver_to(self.replicas[name].webhook, update, SECRET) for name in to)
        )
        assert statuses == [200] * len(to), statuses

    async def act(self, user: User, offset: int) -> None:
        screen: Message | None = None
        previous: Delivery | None = None
        for i, step in enumerate(user.steps):
            if step.text is not None:
                update = self.api.send_text(user.chat, step.text)
                query_id = None
            else:
                assert step.press is not None
                assert screen is not None
                current = self.api.message(user.chat, screen.message_id)
                update = self.api.press(user.chat, step.press(current), screen.message_id)
                query_id = str(update["callback_query"]["id"])
                self.watcher.query_chat[query_id] = user.chat
            to: tuple[str, ...] = (REPLICAS[(offset + i) % 2],)
            if step.may_duplicate and self.rng.random() < DUPLICATE_SHARE:
                to = REPLICAS
            delivery = Delivery(user, step, update, to, len(self.api.calls), query_id)
            if previous is not None:
                previous.end = delivery.mark
            self.deliveries.append(delivery)
            delivery.delivered_at = time.monotonic()
            await self.deliver(update, to)
            call = await self.watcher.screen(user.chat, delivery.mark)
            delivery.screen = call
            text = visible_text(call)
            assert step.expect in text, (user.account_id, i, step.expect, text)
            screen = self.api.message(user.chat, int(call.result["message_id"]))
            previous = delivery
            # A person reads the screen before the next tap: at least Telegram's second per chat.
            await asyncio.sleep(self.rng.uniform(*PAUSE))


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The PostgreSQL test database, migrated and empty."""
    return empty_database(request, "postgresql", tmp_path)


async def test_two_replicas_and_two_dispatchers_share_the_work(
    database: str, tmp_path: Path
) -> None:
    url = database
    await clear_redis_keys()
    await seed(url)
    users = everyone()
    async with FakeBotAPI(TOKEN, bot_username="dpo_replicas_bot") as api:
        for user in users:
            api.add_user(user.chat, first_name="Пользователь")
        api.add_user(tg(GATEKEEPER), first_name="Привратник")
        api.set_rate_limits(overall_per_second=OVERALL_RATE, per_chat_per_second=1)
        api.webhook_timeout = 30.0  # a loaded machine; the replica answers before processing
        watcher = Watcher(api)
        processes = await start_all(api, url, tmp_path)
        try:
            await wait_until_serving(api, processes)
            replicas = {p.name: p for p in processes if p.name in REPLICAS}

            # A wrong or missing secret: 401 from both replicas, nothing recorded or processed.
            gatekeeper = tg(GATEKEEPER)
            knock = api.send_text(gatekeeper, "/menu")
            for replica in replicas.values():
                assert await api.deliver_to(replica.webhook, knock, "wrong-secret") == 401
                assert await api.deliver_to(replica.webhook, knock) == 401
            assert knock["update_id"] not in await processed_ids(url)
            knocked_at = len(api.calls)

            # 500 users at once, ACTING_AT_ONCE of them with a conversation going at a time.
            driver = Driver(api, watcher, replicas)
            slots = asyncio.Semaphore(ACTING_AT_ONCE)
            order = list(enumerate(users))
            random.Random(11).shuffle(order)

            async def one(offset: int, user: User) -> None:
                async with slots:
                    await driver.act(user, offset)

            started = time.monotonic()
            await asyncio.gather(*(one(offset, user) for offset, user in order))
            acted = time.monotonic() - started

            # Telegram's retries of updates already handled, each to the replica that did not
            # handle it: acknowledged, and nothing more happens (checked at the end).
            redelivered_at = len(api.calls)
            retried = random.Random(5).sample(driver.deliveries, 40)
            for delivery in retried:
                assert delivery.screen is not None
                other = next(name for name in REPLICAS if name != delivery.screen.via)
                await driver.deliver(delivery.update, (other,))

            # Only now is the rejected update delivered properly: a minute later, so a request
            # that had been processed after all would have answered by now.
            assert not watcher.calls(gatekeeper, 0), "a refused update was processed"
            await driver.deliver(knock, (REPLICAS[0],))
            menu = await watcher.screen(gatekeeper, knocked_at)
            assert "Главное меню" in visible_text(menu)

            written, added = await top_up(url)
            started = time.monotonic()
            await wait_until_sent(url, processes)
            sending = time.monotonic() - started
            rows = await outbox_rows(url)
            problems = {p.name: problems_in(p) for p in processes}
        finally:
            codes = await stop_all(processes)
        await clear_redis_keys()

        # Every process stopped cleanly and logged no error.
        assert codes == dict.fromkeys(codes, 0), codes
        assert problems == {p.name: [] for p in processes}, problems

        # Every update: exactly one screen, from one replica it was delivered to, its callback
        # answered once, its prompt removed once if it finished an input.
        deliveries = driver.deliveries
        assert len(deliveries) == sum(len(user.steps) for user in users)
        handled_by: dict[int, str] = {}
        for delivery in deliveries:
            calls = [
                call
                for call in watcher.calls(delivery.user.chat, delivery.mark, delivery.end)
                if call.via in REPLICAS and call.ok
            ]
            screens = [call for call in calls if call.method in SCREENS]
            assert screens == [delivery.screen], (delivery.update_id, [c.method for c in calls])
            vias = {call.via for call in calls}
            assert len(vias) == 1, (delivery.update_id, vias)
            assert vias <= set(delivery.replicas), (delivery.update_id, vias)
            handled_by[delivery.update_id] = vias.pop() or ""
            answers = [call for call in calls if call.method == "answerCallbackQuery"]
            assert len(answers) == (delivery.query_id is not None), delivery.update_id
            deletes = [call for call in calls if call.method == "deleteMessage"]
            assert len(deletes) == delivery.step.input_text, delivery.update_id
        assert not api.unanswered_callbacks()
        chats = {user.chat for user in users}
        late = [
            call
            for call in api.calls[redelivered_at:]
            if call.via in REPLICAS and watcher.chat_of(call) in chats
        ]
        assert late == [], "a retried update was processed again"

        # Each update id recorded once (the primary key), and nothing else recorded.
        ids = await processed_ids(url)
        assert sorted(ids) == sorted([d.update_id for d in deliveries] + [knock["update_id"]])
        duplicated = [d for d in deliveries if len(d.replicas) == 2]
        assert duplicated, "no update was delivered to both replicas"
        assert Counter(handled_by[d.update_id] for d in duplicated).keys() == set(REPLICAS)

        # Every comment input finished on the other replica than the one that asked for it.
        crossed = 0
        by_user: dict[int, list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            by_user[delivery.user.account_id].append(delivery)
        for own in by_user.values():
            for before, after in itertools.pairwise(own):
                if after.step.input_text:
                    assert before.step.starts_input
                    assert handled_by[before.update_id] != handled_by[after.update_id]
                    crossed += 1
        assert crossed == sum(step.input_text for user in users for step in user.steps)

        # Every notification sent exactly once, by a dispatcher; both dispatchers sent.
        assert written + added == len(rows) == NOTIFICATIONS
        assert {row.state for row in rows} == {"sent"}
        pushes = [
            call for call in api.calls_of("sendMessage") if call.ok and call.via in DISPATCHERS
        ]
        sent = Counter((call.result["chat"]["id"], call.result["message_id"]) for call in pushes)
        recorded = Counter((row.chat_id, int(row.message_id or 0)) for row in rows)
        assert sent == recorded
        assert set(sent.values()) == {1}
        by_dispatcher = Counter(call.via for call in pushes)
        assert by_dispatcher.keys() == set(DISPATCHERS), by_dispatcher
        titles = {
            "new_application": "Новая заявка №{}",
            "status_changed": "Заявка №{}: статус изменён",
            "comment": "Новый комментарий к заявке №{}",
        }
        text_of = {
            (call.result["chat"]["id"], call.result["message_id"]): visible_text(call)
            for call in pushes
        }
        for row in rows:
            title = titles[row.kind].format(row.application_number)
            assert title in text_of[(row.chat_id, int(row.message_id or 0))], row.id

        waits = sorted(d.screen.time - d.delivered_at for d in deliveries if d.screen)
        print(
            f"\nreplies after {waits[len(waits) // 2]:.2f} s (median), "
            f"{waits[len(waits) * 95 // 100]:.2f} s (95%), {waits[-1]:.2f} s (longest)"
        )
        print(
            f"{len(deliveries)} updates ({len(duplicated)} to both replicas) in {acted:.0f} s, "
            f"{crossed} inputs across replicas; {len(rows)} notifications ({written} from "
            f"actions) sent in {sending:.0f} s: {dict(by_dispatcher)}; "
            f"429 answers: {api.too_many_requests}"
        )
