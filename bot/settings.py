"""Settings from the environment and `.env` (pydantic-settings); names as in docs/PRODUCT.md."""

from __future__ import annotations

import ipaddress
import re
from datetime import time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BOT_TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Shared secrets are guessed offline (a signature, a hash) or online (a bearer token): 32
# random characters of the alphabet below carry about 190 bits.
SECRET_MIN_LENGTH = 32
NEW_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
SECRETS = (
    "API_TOKEN",
    "WEBHOOK_SECRET",
    "MAX_WEBHOOK_SECRET",
    "DPO_WEBHOOK_SECRET",
    "SNILS_HASH_KEY",
)
# A MAX bot token: MAX documents no format; printable characters without spaces catch a value
# pasted with its quotes or a line break.
MAX_BOT_TOKEN_PATTERN = re.compile(r"^[!-~]{16,512}$")
MAX_API_URL = "https://platform-api2.max.ru"
# Addresses the bot sends people or signed data to: https, but for this machine itself (tests, a
# broker on the same host).
HTTPS_URLS = ("PUBLIC_URL", "OIDC_ISSUER", "DPO_WEBHOOK_URL", "MAX_API_URL")
LOOPBACK_HOSTS = ("localhost",)

# How to fix each setting, for the one-line start-up error.
HINTS: dict[str, str] = {
    "BOT_TOKEN": "нужен токен бота вида 123456:ABC-DEF…; получите его у @BotFather в Telegram",
    "DATABASE_URL": "например sqlite+aiosqlite:///./data/dpo-bot.sqlite3 "
    "или postgresql+asyncpg://user:password@host/db",
    "TELEGRAM_API_URL": "адрес сервера Bot API, например https://api.telegram.org",
    "MAX_BOT_TOKEN": "нужен токен MAX-бота (от 16 символов, без пробелов) из раздела «Чат-боты» "
    "платформы MAX для партнёров",
    "MAX_API_URL": f"https-адрес MAX Bot API, например {MAX_API_URL} (http:// — только для "
    "127.0.0.1 и localhost)",
    "MAX_WEBHOOK_SECRET": f"от {SECRET_MIN_LENGTH} до 256 символов: латинские буквы, цифры, _ и -, "
    f"например {NEW_SECRET}",
    "MAX_NOTIFY_RATE": "число сообщений в секунду больше 0 и не больше 30, например 20",
    "REDIS_URL": "например redis://127.0.0.1:6379/0 (или rediss://… с TLS)",
    "PUBLIC_URL": "внешний https-адрес сервиса, например https://bot.example.ru "
    "(http:// — только для 127.0.0.1 и localhost)",
    "API_TOKEN": f"случайная строка не короче {SECRET_MIN_LENGTH} символов, например {NEW_SECRET}",
    "WEBHOOK_SECRET": f"от {SECRET_MIN_LENGTH} до 256 символов: латинские буквы, цифры, _ и -, "
    f"например {NEW_SECRET}",
    "SNILS_HASH_KEY": f"случайный ключ не короче {SECRET_MIN_LENGTH} символов, например "
    f"{NEW_SECRET}; после смены ключа СНИЛС нужно загрузить заново",
    "OIDC_ISSUER": "https-адрес провайдера OpenID Connect, например "
    "https://sso.example.ru/realms/esia (http:// — только для 127.0.0.1 и localhost)",
    "TIMEZONE": "название часового пояса IANA, например Asia/Yekaterinburg",
    "DIGEST_TIME": "время в формате ЧЧ:ММ, например 09:00",
    "DPO_WEBHOOK_URL": "https-адрес, на который модуль принимает решения, например "
    "https://dpo.edu-74.ru/bot/decisions (http:// — только для 127.0.0.1 и localhost)",
    "DPO_WEBHOOK_SECRET": f"нужен ключ подписи решений (HMAC-SHA256) не короче "
    f"{SECRET_MIN_LENGTH} символов, когда задан DPO_WEBHOOK_URL; тот же ключ задаётся в модуле "
    f"«Организация ДПО», например {NEW_SECRET}",
    "LINK_TOKEN_TTL": "целое число секунд от 60 до 86400 (сутки), например 600",
    "NOTIFY_RATE": "число сообщений в секунду больше 0 и не больше 30, например 25",
    "NOTIFY_LEASE": "целое число секунд от 2 до 600, например 30",
    "NOTIFY_IN_BOT": "true или false",
    "DIRECTOR_DECIDES_OWN": "true или false",
    "OUTBOX_RETENTION_DAYS": "целое число дней от 1 до 3650, например 30",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
        # `NAME=` (as in a copy of .env.example) means "not set", not an empty value.
        env_ignore_empty=True,
    )

    BOT_TOKEN: SecretStr | None = None
    DATABASE_URL: str = "sqlite+aiosqlite:///./data/dpo-bot.sqlite3"
    REDIS_URL: str | None = None
    TELEGRAM_API_URL: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    # MAX (docs/MAX.md): served when its token is set, beside Telegram or alone.
    MAX_BOT_TOKEN: SecretStr | None = None
    MAX_API_URL: AnyHttpUrl = AnyHttpUrl(MAX_API_URL)
    MAX_WEBHOOK_SECRET: SecretStr | None = None
    MAX_NOTIFY_RATE: float = Field(20.0, gt=0, le=30)
    # The MAX bot's name in its links (https://max.ru/<name>?start=<token>); unset, the name
    # MAX's `GET /me` answers is used where the MAX bot is served.
    MAX_BOT_USERNAME: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    PUBLIC_URL: AnyHttpUrl | None = None
    WEB_HOST: str = "127.0.0.1"
    WEB_PORT: int = Field(8080, ge=0, le=65535)
    API_TOKEN: SecretStr | None = None
    WEBHOOK_SECRET: SecretStr | None = None
    DPO_WEBHOOK_URL: AnyHttpUrl | None = None
    DPO_WEBHOOK_SECRET: SecretStr | None = None
    OIDC_ISSUER: AnyHttpUrl | None = None
    OIDC_CLIENT_ID: str | None = None
    OIDC_CLIENT_SECRET: SecretStr | None = None
    OIDC_OID_CLAIM: str = "esia_oid"
    OIDC_SNILS_CLAIM: str = "snils"
    SNILS_HASH_KEY: SecretStr | None = None
    LINK_TOKEN_TTL: int = Field(600, ge=60, le=24 * 3600)
    NOTIFY_RATE: float = Field(25.0, gt=0, le=30)
    NOTIFY_LEASE: int = Field(30, ge=2, le=600)
    # False: `python -m bot` leaves sending to `python -m bot dispatcher` processes.
    NOTIFY_IN_BOT: bool = True
    TIMEZONE: str = "Asia/Yekaterinburg"
    DIGEST_TIME: time = time(9, 0)
    HIDE_NAMES_IN_PUSHES: bool = False
    # True where the region's rules let a director approve or cancel his own application (by
    # default staff decide it; services/domain.py).
    DIRECTOR_DECIDES_OWN: bool = False
    # Sent and failed outbox rows (which chat belongs to which account) are deleted this many
    # days later (services/retention.py).
    OUTBOX_RETENTION_DAYS: int = Field(30, ge=1, le=3650)
    LOG_LEVEL: str = "INFO"

    @field_validator("BOT_TOKEN")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not BOT_TOKEN_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("malformed bot token")
        return value

    @field_validator("MAX_BOT_TOKEN")
    @classmethod
    def _max_bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not MAX_BOT_TOKEN_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("malformed MAX bot token")
        return value

    @field_validator("WEBHOOK_SECRET", "MAX_WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("malformed webhook secret")
        return value

    @field_validator(*SECRETS)
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < SECRET_MIN_LENGTH:
            raise ValueError(f"a secret shorter than {SECRET_MIN_LENGTH} characters")
        return value

    @field_validator(*HTTPS_URLS)
    @classmethod
    def _https_or_loopback(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if value is not None and value.scheme != "https" and not is_loopback(value.host):
            raise ValueError("http:// for an address other than this machine's")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("unsupported database URL")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("unsupported Redis URL")
        return value

    @field_validator("TIMEZONE")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError("unknown time zone") from error
        return value

    @property
    def telegram_api_base(self) -> str:
        return str(self.TELEGRAM_API_URL).rstrip("/")

    @property
    def public_base(self) -> str:
        """PUBLIC_URL without the trailing slash ("" when not set)."""
        return str(self.PUBLIC_URL).rstrip("/") if self.PUBLIC_URL is not None else ""

    @property
    def bot_first_sign_in(self) -> bool:
        """«Войти через Госуслуги» is offered: an OIDC provider and the public address are set."""
        return (
            self.OIDC_ISSUER is not None
            and bool(self.OIDC_CLIENT_ID)
            and self.PUBLIC_URL is not None
        )

    @property
    def webhook_mode(self) -> bool:
        return self.PUBLIC_URL is not None and self.WEBHOOK_SECRET is not None

    @property
    def max_api_base(self) -> str:
        return str(self.MAX_API_URL).rstrip("/")

    @property
    def max_webhook_mode(self) -> bool:
        """MAX updates come by webhook (POST /subscriptions), not long polling."""
        return self.PUBLIC_URL is not None and self.MAX_WEBHOOK_SECRET is not None

    @property
    def telegram_bot_id(self) -> int | None:
        """The Telegram bot's id: the number its token starts with (getMe answers the same)."""
        if self.BOT_TOKEN is None:
            return None
        return int(self.BOT_TOKEN.get_secret_value().partition(":")[0])

    @property
    def messengers(self) -> tuple[str, ...]:
        """The messengers served: those whose bot token is set."""
        served = ("telegram", self.BOT_TOKEN), ("max", self.MAX_BOT_TOKEN)
        return tuple(name for name, token in served if token is not None)

    @property
    def decisions_webhook(self) -> bool:
        """Decisions made here are also POSTed to the web module (DPO_WEBHOOK_URL is set)."""
        return self.DPO_WEBHOOK_URL is not None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.TIMEZONE)

    @property
    def outbox_retention(self) -> timedelta:
        return timedelta(days=self.OUTBOX_RETENTION_DAYS)


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost: this machine, where plain http stays on the machine."""
    if host is None:
        return False
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SettingsError(Exception):
    """Invalid or missing settings; `lines` say which and how to fix them, one per setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


NO_MESSENGER = (
    "Ошибка настройки: не задан ни BOT_TOKEN (Telegram), ни MAX_BOT_TOKEN (MAX) — задайте хотя бы "
    "один: токен Telegram-бота выдаёт @BotFather, токен MAX-бота — раздел «Чат-боты» платформы "
    "MAX для партнёров"
)


def load_settings(*, require_bot_token: bool = True, **overrides: object) -> Settings:
    """Read settings; raise SettingsError with one clear line per problem."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None
    if require_bot_token and not settings.messengers:
        raise SettingsError([NO_MESSENGER])
    if settings.DPO_WEBHOOK_URL is not None and settings.DPO_WEBHOOK_SECRET is None:
        raise SettingsError(
            [f"Ошибка настройки: DPO_WEBHOOK_SECRET не задана — {HINTS['DPO_WEBHOOK_SECRET']}"]
        )
    return settings


def describe_errors(error: ValidationError) -> list[str]:
    """One Russian line per invalid setting, naming it and how to fix it; no values echoed."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        problem = "не задана" if item["type"] == "missing" else "задана неверно"
        hint = HINTS.get(name, item["msg"])
        lines.append(f"Ошибка настройки: {name} {problem} — {hint}")
    return lines
