"""Bot-first sign-in pages (docs/linking.md, "Bot first"), served by the bot's aiohttp web app.

    GET  /link/{token}   the button «Войти через Госуслуги» opens this as a Telegram Mini App;
                         Telegram puts launch data signed with the bot token in the URL
                         fragment, which browsers never send, so the page's own script
                         (GET /link/launch.js; no inline or foreign script, strict CSP) posts
                         the fragment back to
    POST /link/{token}   which checks the launch data (services/launch.py) names the Telegram
                         user the link was made for, and starts an OpenID Connect sign-in (code
                         flow with PKCE, through Authlib) at the issuer of OIDC_ISSUER — in
                         production an identity broker that speaks ESIA. A page opened in an
                         ordinary browser (a forwarded or copied link) or by another Telegram
                         user is refused with a page that explains the portal-first way
    GET  /link/callback  the provider returns here: the code is exchanged, the ID token checked
                         against the provider's JWKS and the nonce, the account found by the ESIA
                         oid claim or else the SNILS keyed hash; then the confirmation page
                         «Привязать Telegram-аккаунт @username (id N) к учётной записи <ФИО>?»,
                         naming the Telegram user by what Telegram vouches for, not a display name
    POST /link/confirm   «Подтвердить» binds and the bot writes «Вы вошли как …» in the chat;
                         «Отмена» binds nothing and the link is spent

The flow is tied to the browser that started it by an HttpOnly cookie whose hash is kept with
the token; the confirmation form carries a CSRF token derived from it. Every failure gets a
clear Russian page. Nothing personal and no token reaches the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.effects import Reply
from bot.conversation.linking import announcement
from bot.settings import Settings
from bot.texts import linking as texts
from bot.texts.messengers import say
from services.clock import Clock
from services.launch import LaunchProblem, LaunchVerifier, SignedLaunchVerifier
from services.linking import (
    Linked,
    LinkRefused,
    MessengerAccount,
    Refusal,
    begin_sign_in,
    confirm_sign_in,
    end_sign_in,
    is_well_formed,
    launch_refusal,
    match_account,
    open_sign_in,
    pending_sign_in,
    propose_binding,
    sign_in_by_state,
)
from storage.models import LinkToken
from storage.repositories import Repositories

if TYPE_CHECKING:
    from bot.web.oidc_client import OidcProvider

log = logging.getLogger(__name__)

COOKIE = "dpo_link"
COOKIE_PATH = "/link"
CALLBACK_PATH = "/link/callback"
CONFIRM_PATH = "/link/confirm"
LAUNCH_SCRIPT_PATH = "/link/launch.js"
# Where Telegram puts a Mini App's launch data in the fragment (#tgWebAppData=…&tgWebAppVersion=…).
TELEGRAM_LAUNCH_FIELD = "tgWebAppData"
FRAGMENT_FIELD = "fragment"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
# The launch page runs one script, ours, from this server.
LAUNCH_PAGE_HEADERS = PAGE_HEADERS | {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

# Hands the launch data in the fragment to the server (browsers never send a fragment), and
# drops it from the address and the history. Without launch data it posts an empty one: the
# server, not the script, refuses the page.
LAUNCH_SCRIPT = f"""\
(function () {{
  "use strict";
  var form = document.getElementById("launch");
  if (!form) {{ return; }}
  form.elements.namedItem("{FRAGMENT_FIELD}").value = window.location.hash.replace(/^#/, "");
  if (window.history && window.history.replaceState) {{
    window.history.replaceState(null, "", window.location.pathname);
  }}
  form.submit();
}})();
"""

REFUSAL_STATUS = {
    Refusal.MALFORMED: 404,
    Refusal.UNKNOWN: 404,
    Refusal.USED: 410,
    Refusal.EXPIRED: 410,
    Refusal.THROTTLED: 429,
    Refusal.THROTTLED_OVERALL: 429,
    Refusal.NOT_LAUNCHED: 403,
    Refusal.LAUNCH_STALE: 403,
    Refusal.OTHER_TELEGRAM_USER: 403,
    Refusal.NO_ROLES: 403,
    Refusal.NO_ACCOUNT: 404,
    Refusal.ACCOUNT_LINKED_ELSEWHERE: 409,
    Refusal.TELEGRAM_LINKED_ELSEWHERE: 409,
}


class SignInError(Exception):
    """The provider could not be reached, or its answer did not pass the checks."""

    def __init__(self, *, unavailable: bool, reason: str) -> None:
        super().__init__(reason)
        self.unavailable = unavailable


def provider_from(settings: Settings) -> OidcProvider | None:
    """The configured provider, or None when bot-first sign-in is off.

    The OpenID Connect client (bot/web/oidc_client.py: Authlib, joserfc, httpx2) is imported only
    when a provider is configured: a process without one does not carry it (about 17 MB of
    memory, bench/memory.py).
    """
    if settings.OIDC_ISSUER is None or not settings.OIDC_CLIENT_ID or not settings.public_base:
        return None
    from bot.web.oidc_client import OidcProvider

    secret = settings.OIDC_CLIENT_SECRET
    return OidcProvider(
        issuer=str(settings.OIDC_ISSUER),
        client_id=settings.OIDC_CLIENT_ID,
        client_secret=secret.get_secret_value() if secret is not None else None,
        redirect_uri=settings.public_base + CALLBACK_PATH,
        oid_claim=settings.OIDC_OID_CLAIM,
        snils_claim=settings.OIDC_SNILS_CLAIM,
    )


def telegram_launch(settings: Settings) -> LaunchVerifier | None:
    """The check of Telegram Mini App launch data, signed with BOT_TOKEN."""
    if settings.BOT_TOKEN is None:
        return None
    return SignedLaunchVerifier(
        messenger="telegram",
        fragment_field=TELEGRAM_LAUNCH_FIELD,
        bot_token=settings.BOT_TOKEN.get_secret_value(),
    )


def cross_site(request: web.Request) -> bool:
    """A form posted from another site's page (browsers say so in Sec-Fetch-Site)."""
    return request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin"


def csrf_token(browser_key: str) -> str:
    return hmac.new(browser_key.encode(), b"confirm", hashlib.sha256).hexdigest()


# -- pages -----------------------------------------------------------------------------------

STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;margin:0;"
    "background:#f3f5f8;color:#1f2933}main{max-width:34rem;margin:3rem auto;padding:2rem;"
    "background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}"
    "h1{font-size:1.4rem;margin-top:0}p{line-height:1.5}form{display:flex;gap:.75rem;"
    "margin-top:1.5rem}button{font-size:1rem;padding:.6rem 1.4rem;border-radius:6px;"
    "border:1px solid #0d4cd3;cursor:pointer}button.primary{background:#0d4cd3;color:#fff}"
    "button.secondary{background:#fff;color:#0d4cd3}.note{color:#52606d;font-size:.9rem}"
    "a{color:#0d4cd3}"
)


def render_page(title: str, paragraphs: list[str], *, extra: str = "", head: str = "") -> str:
    """A complete HTML page; `paragraphs` are plain text (escaped here), `extra` and `head`
    are markup (for the body and the head)."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        '<!DOCTYPE html><html lang="ru"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}{escape(texts.PAGE_TITLE_SUFFIX)}</title><style>{STYLE}</style>{head}</head>"
        f"<body><main><h1>{escape(title)}</h1>{body}{extra}</main></body></html>"
    )


def page(
    title: str,
    paragraphs: list[str],
    *,
    status: int = 200,
    extra: str = "",
    head: str = "",
    headers: dict[str, str] = PAGE_HEADERS,
) -> web.Response:
    return web.Response(
        text=render_page(title, paragraphs, extra=extra, head=head),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=headers,
    )


# Both are the messenger's (bot/telegram/bot.py): each logs a failure to reach the chat and
# returns; the page goes on.
Announce = Callable[[int, Reply], Awaitable[None]]
Tell = Callable[[int, str], Awaitable[None]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class LinkPages:
    """The bot-first sign-in routes and what they need."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    tell: Tell  # sends a chat a message (bot.telegram.bot.chat_teller)
    clock: Clock
    bot_username: str
    announce: Announce  # sends the chat its announcement (bot.telegram.bot.announce_to)
    provider: OidcProvider | None = None
    launch: LaunchVerifier | None = None  # checks the launch data of the Mini App
    messenger: str = "telegram"  # whose Mini App opens the pages: their texts name it

    def register(self, app: web.Application) -> None:
        # The fixed paths first: {token} would match them too.
        app.router.add_get(LAUNCH_SCRIPT_PATH, self.launch_script)
        app.router.add_get(CALLBACK_PATH, self.guarded(self.callback))
        app.router.add_post(CONFIRM_PATH, self.guarded(self.confirm))
        app.router.add_get("/link/{token}", self.guarded(self.open))
        app.router.add_post("/link/{token}", self.guarded(self.start))

    def guarded(self, route: Route) -> Route:
        """An unexpected failure still ends on a clear page (the details go to the log)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await route(request)
            except web.HTTPException:
                raise
            except Exception as error:
                log.exception("sign-in page %s failed: %s", route.__name__, type(error).__name__)
                return self.failure(texts.PAGE_SOMETHING_WRONG, 500)

        return handler

    # -- helpers -----------------------------------------------------------------------------

    def back_to_bot(self) -> str:
        url = f"https://t.me/{self.bot_username}"
        return f'<p><a href="{escape(url)}">{escape(self.say(texts.PAGE_BACK_TO_BOT))}</a></p>'

    def say(self, text: str, **values: object) -> str:
        """A catalogue text naming the messenger, with its other fields filled in."""
        return say(text, self.messenger, **values)

    def failure(
        self, title_and_text: tuple[str, str], status: int, **values: object
    ) -> web.Response:
        title, text = (self.say(part, **values) for part in title_and_text)
        return page(title, [text], status=status, extra=self.back_to_bot())

    def refusal(self, reason: Refusal) -> web.Response:
        ttl_minutes = self.settings.LINK_TOKEN_TTL // 60
        return self.failure(
            texts.PAGE_REFUSALS[reason], REFUSAL_STATUS[reason], ttl_minutes=ttl_minutes
        )

    def chat_refusal(self, reason: Refusal) -> str:
        """A refusal told to the chat, as the bot itself words it."""
        new_link = self.say(texts.NEW_LINK_PORTAL) + texts.NEW_LINK_BOT_FIRST
        ttl_minutes = self.settings.LINK_TOKEN_TTL // 60
        return self.say(texts.REFUSALS[reason], new_link=new_link, ttl_minutes=ttl_minutes)

    async def tell_chat(self, chat_id: int | None, text: str) -> None:
        if chat_id is None:
            return
        await self.tell(chat_id, text)

    def secure_cookie(self) -> bool:
        return self.settings.public_base.startswith("https://")

    # -- routes ------------------------------------------------------------------------------

    async def launch_script(self, request: web.Request) -> web.StreamResponse:
        """GET /link/launch.js: the launch page's script (served here, so CSP allows only us)."""
        return web.Response(
            text=LAUNCH_SCRIPT,
            content_type="text/javascript",
            charset="utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def open(self, request: web.Request) -> web.StreamResponse:
        """GET /link/{token}: the page the Mini App opens; its script posts the launch data.

        Nothing is looked up yet: the token is checked with the launch data, which says who
        is asking (so that guesses count toward that user's throttle).
        """
        if self.provider is None or self.launch is None:
            return self.failure(texts.PAGE_NOT_CONFIGURED, 503)
        token = request.match_info["token"]
        if not is_well_formed(token):
            return self.refusal(Refusal.MALFORMED)
        form = (
            f'<form id="launch" method="post" action="/link/{escape(token)}">'
            f'<input type="hidden" name="{FRAGMENT_FIELD}" value=""></form>'
            f"<noscript><p>{escape(self.say(texts.PAGE_LAUNCH_NO_SCRIPT))}</p></noscript>"
            f'<script src="{LAUNCH_SCRIPT_PATH}"></script>'
        )
        return page(
            texts.PAGE_LAUNCH_TITLE,
            [self.say(texts.PAGE_LAUNCH)],
            extra=form,
            headers=LAUNCH_PAGE_HEADERS,
        )

    async def start(self, request: web.Request) -> web.StreamResponse:
        """POST /link/{token}: the launch data; the sign-in at the provider if it names the
        Telegram user the link was made for."""
        provider, verifier = self.provider, self.launch
        if provider is None or verifier is None:
            return self.failure(texts.PAGE_NOT_CONFIGURED, 503)
        if cross_site(request):
            return self.failure(texts.PAGE_CROSS_SITE, 403)
        fragment = (await request.post()).get(FRAGMENT_FIELD)
        launch = verifier.verify(fragment if isinstance(fragment, str) else "", self.clock.now())
        if isinstance(launch, LaunchProblem):
            log.info("sign-in page without valid launch data: %s", launch.value)
            return self.refusal(launch_refusal(launch))
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        code_verifier, browser_key = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
        # Before the transaction: the first sign-in of a process fetches the provider's
        # discovery document, and no transaction stays open while another server is awaited.
        # (A token is not checked while the provider is away: no page would tell anything.)
        try:
            url = await provider.authorization_url(
                state=state, nonce=nonce, code_verifier=code_verifier
            )
        except SignInError as error:
            log.warning("OIDC provider unavailable: %s", error)
            return self.failure(texts.PAGE_PROVIDER_UNAVAILABLE, 502)
        async with self.session_factory() as session:
            repo = Repositories(session)
            row = await open_sign_in(repo, request.match_info["token"], launch, clock=self.clock)
            if isinstance(row, Refusal):
                await session.commit()  # a refused token counts toward the throttle
                log.info("sign-in page of Telegram user %s refused: %s", launch.user_id, row.value)
                return self.refusal(row)
            begin_sign_in(
                row,
                launch=launch,
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
                browser_key=browser_key,
            )
            await session.commit()
        # A page that moves on, not a redirect: CSP form-action would hold a form's redirect
        # to the provider (and on to ESIA) to this origin.
        link = f'<p><a href="{escape(url)}">{escape(texts.PAGE_GO_ON)}</a></p>'
        response = page(
            texts.PAGE_LAUNCH_TITLE,
            [texts.PAGE_GOING],
            extra=link,
            head=f'<meta http-equiv="refresh" content="0;url={escape(url)}">',
        )
        response.set_cookie(
            COOKIE,
            browser_key,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=self.secure_cookie(),
            max_age=self.settings.LINK_TOKEN_TTL,
        )
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """GET /link/callback: the provider's answer; the confirmation page if all is well."""
        provider = self.provider
        if provider is None:
            return self.failure(texts.PAGE_NOT_CONFIGURED, 503)
        query = request.query
        state = query.get("state")
        if not state:
            return self.failure(texts.PAGE_STATE_MISMATCH, 400)
        async with self.session_factory() as session:
            repo = Repositories(session)
            browser_key = request.cookies.get(COOKIE)
            row = await sign_in_by_state(repo, state, browser_key, clock=self.clock)
            if row is None or browser_key is None:
                return self.failure(texts.PAGE_STATE_MISMATCH, 400)
            if isinstance(row, Refusal):
                return self.refusal(row)
            if "error" in query:
                log.info("sign-in refused at the provider: %s", query.get("error", "")[:64])
                chat_id = row.chat_id
                await session.rollback()  # nothing to keep; no transaction while Telegram waits
                await self.tell_chat(chat_id, texts.SIGN_IN_DENIED_CHAT)
                return self.failure(texts.PAGE_DENIED, 403)
            code, nonce, verifier = query.get("code"), row.oidc_nonce, row.oidc_code_verifier
            issuer = query.get("iss")  # RFC 9207, where the provider sends it
            if (
                not code
                or nonce is None
                or verifier is None
                or (issuer is not None and issuer.rstrip("/") != provider.issuer.rstrip("/"))
            ):
                return self.failure(texts.PAGE_BAD_RESPONSE, 400)
            # The state is single use: a replayed callback finds nothing.
            row.oidc_state_hash = row.oidc_nonce = row.oidc_code_verifier = None
            await session.commit()
            try:
                claims = await provider.sign_in(code=code, code_verifier=verifier, nonce=nonce)
            except SignInError as error:
                log.warning("OIDC sign-in failed: %s", error)
                if error.unavailable:
                    return self.failure(texts.PAGE_PROVIDER_UNAVAILABLE, 502)
                return self.failure(texts.PAGE_BAD_RESPONSE, 400)
            return await self._propose(session, repo, row, claims, csrf_token(browser_key))

    async def _propose(
        self,
        session: AsyncSession,
        repo: Repositories,
        row: LinkToken,
        claims: dict[str, Any],
        csrf: str,
    ) -> web.Response:
        key = self.settings.SNILS_HASH_KEY
        account = await match_account(
            repo,
            claims,
            oid_claim=self.settings.OIDC_OID_CLAIM,
            snils_claim=self.settings.OIDC_SNILS_CLAIM,
            snils_key=key.get_secret_value() if key is not None else None,
        )
        refused = (
            LinkRefused(Refusal.NO_ACCOUNT)
            if account is None
            else await propose_binding(repo, row, account)
        )
        await session.commit()
        if refused is not None or account is None:
            reason = refused.reason if refused is not None else Refusal.NO_ACCOUNT
            log.info("bot-first sign-in for chat %s refused: %s", row.chat_id, reason.value)
            await self.tell_chat(row.chat_id, self.chat_refusal(reason))
            return self.refusal(reason)
        # bot-first tokens are made for one messenger user
        assert row.messenger is not None
        assert row.user_id is not None
        telegram = texts.messenger_account(
            MessengerAccount(row.messenger, row.user_id, row.username)
        )
        question = self.say(texts.PAGE_CONFIRM_QUESTION, telegram=telegram, name=account.full_name)
        form = (
            f'<form method="post" action="{CONFIRM_PATH}">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            '<button class="primary" type="submit" name="decision" value="confirm">'
            f"{escape(texts.PAGE_CONFIRM)}</button>"
            '<button class="secondary" type="submit" name="decision" value="cancel">'
            f"{escape(texts.PAGE_CANCEL)}</button></form>"
            f'<p class="note">{escape(self.say(texts.PAGE_CONFIRM_NOTE))}</p>'
        )
        return page(self.say(texts.PAGE_CONFIRM_TITLE), [question], extra=form)

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        """POST /link/confirm: «Подтвердить» binds, «Отмена» spends the link."""
        form = await request.post()
        browser_key = request.cookies.get(COOKIE)
        async with self.session_factory() as session:
            repo = Repositories(session)
            row = await pending_sign_in(repo, browser_key, clock=self.clock)
            if row is None or browser_key is None:
                return self.failure(texts.PAGE_STATE_MISMATCH, 400)
            if isinstance(row, Refusal):
                return self.refusal(row)
            if not hmac.compare_digest(str(form.get("csrf", "")), csrf_token(browser_key)):
                return self.failure(texts.PAGE_STATE_MISMATCH, 400)
            chat_id = row.chat_id
            if form.get("decision") != "confirm":
                await end_sign_in(repo, row, clock=self.clock)
                await session.commit()
                await self.tell_chat(chat_id, texts.SIGN_IN_CANCELLED_CHAT)
                response = page(
                    texts.PAGE_CANCELLED_TITLE, [texts.PAGE_CANCELLED], extra=self.back_to_bot()
                )
            else:
                outcome = await confirm_sign_in(repo, row, clock=self.clock)
                # Built in the transaction, sent after it (none open while Telegram waits).
                reply = (
                    await announcement(repo, outcome, self.messenger)
                    if isinstance(outcome, Linked)
                    else None
                )
                await session.commit()
                if isinstance(outcome, LinkRefused):
                    await self.tell_chat(chat_id, self.chat_refusal(outcome.reason))
                    return self.refusal(outcome.reason)
                assert reply is not None
                log.info(
                    "account %s linked to %s user %s (bot first)",
                    outcome.binding.account_id,
                    outcome.binding.messenger,
                    outcome.binding.user_id,
                )
                # Bound all the same if the chat cannot be told; /start shows the rest.
                await self.announce(outcome.binding.chat_id, reply)
                response = page(
                    texts.PAGE_DONE_TITLE, [self.say(texts.PAGE_DONE)], extra=self.back_to_bot()
                )
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response
