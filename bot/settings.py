"""Settings from the environment and `.env` (pydantic-settings); names as in SPEC "Fixed names"."""

from __future__ import annotations

import re
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BOT_TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,100}$")
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

# How to fix each setting, for the one-line start-up error.
HINTS: dict[str, str] = {
    "BOT_TOKEN": "нужен токен бота вида 123456:ABC-DEF…; получите его у @BotFather в Telegram",
    "DATABASE_URL": "например sqlite+aiosqlite:///./data/dpo-bot.sqlite3 "
    "или postgresql+asyncpg://user:password@host/db",
    "TELEGRAM_API_URL": "адрес сервера Bot API, например https://api.telegram.org",
    "REDIS_URL": "например redis://127.0.0.1:6379/0 (или rediss://… с TLS)",
    "PUBLIC_URL": "внешний https-адрес сервиса, например https://bot.example.ru",
    "WEBHOOK_SECRET": "от 1 до 256 символов: латинские буквы, цифры, _ и -",
    "TIMEZONE": "название часового пояса IANA, например Asia/Yekaterinburg",
    "DIGEST_TIME": "время в формате ЧЧ:ММ, например 09:00",
    "DPO_WEBHOOK_URL": "адрес, на который модуль принимает решения, например "
    "https://dpo.edu-74.ru/bot/decisions",
    "DPO_WEBHOOK_SECRET": "нужен ключ подписи решений (HMAC-SHA256), когда задан DPO_WEBHOOK_URL; "
    "тот же ключ задаётся в модуле «Организация ДПО»",
    "LINK_TOKEN_TTL": "целое число секунд от 60 до 86400 (сутки), например 600",
    "NOTIFY_RATE": "число сообщений в секунду больше 0 и не больше 30, например 25",
    "NOTIFY_LEASE": "целое число секунд от 2 до 600, например 30",
    "NOTIFY_IN_BOT": "true или false",
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
    LOG_LEVEL: str = "INFO"

    @field_validator("BOT_TOKEN")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not BOT_TOKEN_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("malformed bot token")
        return value

    @field_validator("WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("malformed webhook secret")
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
    def decisions_webhook(self) -> bool:
        """Decisions made here are also POSTed to the web module (DPO_WEBHOOK_URL is set)."""
        return self.DPO_WEBHOOK_URL is not None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.TIMEZONE)


class SettingsError(Exception):
    """Invalid or missing settings; `lines` say which and how to fix them, one per setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_settings(*, require_bot_token: bool = True, **overrides: object) -> Settings:
    """Read settings; raise SettingsError with one clear line per problem."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_errors(error)) from None
    if require_bot_token and settings.BOT_TOKEN is None:
        raise SettingsError([f"Ошибка настройки: BOT_TOKEN не задана — {HINTS['BOT_TOKEN']}"])
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
