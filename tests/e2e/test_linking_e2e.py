"""End to end, bot first: a real headless Chromium (Debian's `chromium`, driven by Playwright)
opens the sign-in button's URL as a Telegram client opens a Mini App (launch data signed with
the bot token in the fragment), the page's own script hands it to the server, the browser signs
in at a real OpenID Connect provider (the npm package oidc-provider, tests/fakes/oidc/) on
127.0.0.1, confirms on the bot's page, and the bot writes in the chat. The same URL without
launch data, or with another Telegram user's, is refused before any sign-in.

Set-up is done here: `npm ci` in tests/fakes/oidc/ when its node_modules is missing; Playwright
comes with the dev extras (pyproject.toml); Chromium is installed by .ci/run through apt. Where
one of them cannot be had, the test skips and says which. The browser is kept off the network:
every name but 127.0.0.1 resolves to nothing and requests elsewhere are aborted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import SystemClock
from tests.fakes.bot_api import FakeBotAPI
from tests.linking_support import (
    NEW_DIRECTOR,
    NEW_DIRECTOR_NAME,
    NEW_DIRECTOR_OID,
    NEW_DIRECTOR_SNILS,
    STRANGER,
    STRANGER_2,
    add_new_accounts,
    bot_first,
    free_port,
    link_of,
)

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "fakes" / "oidc"
CLIENT_ID, CLIENT_SECRET = "dpo-bot", "e2e-client-secret"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]

pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.slow]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def provider_dir() -> Path:
    """tests/fakes/oidc with oidc-provider installed (`npm ci` from package-lock.json)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed for the OpenID Connect provider (oidc-provider)")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(f"npm ci in tests/fakes/oidc failed: {result.stderr.strip()[-400:]}")
    return PROVIDER_DIR


@contextlib.asynccontextmanager
async def oidc_provider(directory: Path, port: int, redirect_uri: str) -> AsyncIterator[str]:
    """node provider.js on 127.0.0.1:port; yields the issuer once it listens."""
    accounts = {"smirnova": {"esia_oid": NEW_DIRECTOR_OID, "snils": NEW_DIRECTOR_SNILS}}
    process = await asyncio.create_subprocess_exec(
        "node",
        "provider.js",
        cwd=directory,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PORT": str(port),
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URI": redirect_uri,
            "OIDC_ACCOUNTS": json.dumps(accounts),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if not line.startswith(b"ready "):
            assert process.stderr is not None
            error = await asyncio.wait_for(process.stderr.read(), timeout=5)
            raise RuntimeError(f"oidc-provider did not start: {error.decode()[-800:]}")
        yield line.decode().split()[1]
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def test_bot_first_sign_in_in_chromium_against_oidc_provider(
    provider_dir: Path,
    tmp_path: Path,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="Playwright for Python is needed (pip install -e '.[dev]')"
    )
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("Chromium is needed: apt-get install chromium")
    await add_new_accounts(session_factory)
    web_port, provider_port = free_port(), free_port()
    redirect_uri = f"http://127.0.0.1:{web_port}/link/callback"
    clock = SystemClock()  # the provider's ID tokens live in real time

    async with (
        oidc_provider(provider_dir, provider_port, redirect_uri) as issuer,
        bot_first(
            api,
            database_url,
            session_factory,
            clock,
            issuer=issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            port=web_port,
        ) as flow,
        playwright_api.async_playwright() as playwright,
    ):
        flow.harness.api.add_user(STRANGER, first_name="Незнакомец", username="neznakomets")
        flow.harness.api.add_user(STRANGER_2, first_name=NEW_DIRECTOR_NAME)
        url = await flow.sign_in_url(STRANGER)
        address = url.partition("#")[0]
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            context.set_default_timeout(15_000)

            async def only_loopback(route: object) -> None:
                request = route.request  # type: ignore[attr-defined]
                if urlsplit(request.url).hostname == "127.0.0.1":
                    await route.continue_()  # type: ignore[attr-defined]
                else:
                    await route.abort()  # type: ignore[attr-defined]

            await context.route("**/*", only_loopback)
            problems: list[str] = []  # a CSP violation in the console, a script error

            def console(message: Any) -> None:
                if "Content Security Policy" in message.text:
                    problems.append(message.text)

            async def open_page(address: str) -> Any:
                """A fresh page, as each opening of a Mini App is a fresh web view."""
                for old in context.pages:
                    await old.close()
                page = await context.new_page()
                page.on("console", console)
                page.on("pageerror", lambda error: problems.append(str(error)))
                await page.goto(address)
                return page

            # The link opened as a link (forwarded, copied): no launch data.
            page = await open_page(address)
            await page.wait_for_selector('h1:has-text("Откройте вход из Telegram")')
            assert "«Подключить Telegram»" in await page.inner_text("main")
            # Opened from the button by another Telegram user (a forwarded button).
            page = await open_page(flow.open_button(STRANGER, opened_by=STRANGER_2))
            await page.wait_for_selector('h1:has-text("Ссылка выдана другому Telegram-аккаунту")')
            assert not [c for c in await context.cookies() if c["name"] == "dpo_link"]

            page = await open_page(flow.open_button(STRANGER))  # → the provider's form
            await page.fill('input[name="login"]', "smirnova")
            await page.fill('input[name="password"]', "any password")
            await page.click('button[type="submit"]')
            await page.click('button:has-text("Continue")')  # the provider's consent prompt
            await page.wait_for_selector("text=Привязать Telegram-аккаунт")
            question = await page.inner_text("main")
            assert (
                f"Привязать Telegram-аккаунт @neznakomets (id {STRANGER}) к учётной записи "
                f"{NEW_DIRECTOR_NAME}?"
            ) in question
            assert "tgWebAppData" not in page.url  # the script dropped it from the address
            assert await link_of(session_factory, STRANGER) is None
            await page.click('button:has-text("Подтвердить")')
            await page.wait_for_selector('h1:has-text("Готово")')
            assert problems == [], problems
        finally:
            await context.close()

        signed_in, consent = [m for m in flow.harness.api.chat(STRANGER) if m.from_bot][-2:]
        assert signed_in.text == f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»."
        assert consent.buttons() == [["Ознакомился"]]
        flow.harness.assert_no_errors()

    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert (link.account_id, link.chat_id, link.account.consent_at) == (
        NEW_DIRECTOR,
        STRANGER,
        None,
    )
