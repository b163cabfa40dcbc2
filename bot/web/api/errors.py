"""API errors: one JSON shape, a Russian message that names the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import ErrorDetails


class FieldError(BaseModel):
    field: str = Field(description="Поле: имя, путь вида applications[3].applicant_id")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx of the API."""

    code: str = Field(
        description="unauthorized, invalid_json, validation_error, unknown_reference, conflict, "
        "not_configured, not_found, method_not_allowed, payload_too_large, internal_error"
    )
    message: str = Field(description="Что не так, по-русски, с именем поля")
    fields: list[FieldError] = Field(default_factory=list)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, fields=list(fields))
        self.headers = headers or {}


def field_error(status: int, code: str, field: str, message: str) -> ApiError:
    return ApiError(status, code, f"{field}: {message}", [FieldError(field=field, message=message)])


def location(loc: Sequence[int | str], prefix: str = "") -> str:
    """('applications', 3, 'applicant_id') -> 'applications[3].applicant_id'."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "body"


# The message of each kind of pydantic error; a `{name}` is the error's context value `name`
# (the limit, the allowed values).
MESSAGES = {
    "missing": "обязательное поле",
    "extra_forbidden": "неизвестное поле",
    "int_type": "ожидается целое число",
    "int_parsing": "ожидается целое число",
    "int_from_float": "ожидается целое число",
    "string_type": "ожидается строка",
    "bool_type": "ожидается true или false",
    "list_type": "ожидается список",
    "model_type": "ожидается объект",
    "model_attributes_type": "ожидается объект",
    "dict_type": "ожидается объект",
    "string_pattern_mismatch": "недопустимые символы или формат",
    "string_too_short": "не может быть пустым",
    "date_type": "ожидается дата ГГГГ-ММ-ДД",
    "date_parsing": "ожидается дата ГГГГ-ММ-ДД",
    "date_from_datetime_parsing": "ожидается дата ГГГГ-ММ-ДД",
    "date_from_datetime_inexact": "ожидается дата ГГГГ-ММ-ДД без времени",
    "datetime_type": "ожидаются дата и время ISO 8601 с часовым поясом",
    "datetime_parsing": "ожидаются дата и время ISO 8601 с часовым поясом",
    "datetime_from_date_parsing": "ожидаются дата и время ISO 8601 с часовым поясом",
    "timezone_aware": "укажите часовой пояс, например 2026-09-01T10:00:00+05:00",
    "greater_than_equal": "должно быть не меньше {ge}",
    "less_than_equal": "должно быть не больше {le}",
    "string_too_long": "не длиннее {max_length} символов",
    "too_long": "не больше {max_length} элементов",
    "too_short": "не меньше {min_length} элементов",
    "enum": "допустимые значения: {expected}",
}


class _Context(dict[str, Any]):
    def __missing__(self, key: str) -> None:
        return None


def describe(error: ErrorDetails) -> str:
    """The Russian message for one pydantic error."""
    ctx = _Context(error.get("ctx") or {})
    kind = error["type"]
    if kind in MESSAGES:
        return MESSAGES[kind].format_map(ctx)
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(error["msg"])


def validation_failed(error: ValidationError, prefix: str = "") -> ApiError:
    """422 listing every invalid field; 400 when the body is not JSON at all."""
    details = error.errors(include_url=False)
    if any(item["type"] == "json_invalid" for item in details):
        return ApiError(400, "invalid_json", "Тело запроса — не JSON-объект в UTF-8")
    fields = [
        FieldError(field=location(item["loc"], prefix), message=describe(item)) for item in details
    ]
    message = "; ".join(f"{item.field}: {item.message}" for item in fields)
    return ApiError(422, "validation_error", message, fields)
