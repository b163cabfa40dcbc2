"""The OpenAPI 3.1 document, generated from the endpoints' own pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.web.api.core import PREFIX, Endpoint
from bot.web.api.errors import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"

DESCRIPTION = """\
API бота модуля «Организация ДПО»: модуль передаёт боту ОО, учётные записи и заявки, получает
одноразовые ссылки для привязки мессенджеров (Telegram, MAX), отвязывает их и забирает решения,
принятые в боте.

Все запросы — с заголовком `Authorization: Bearer <API_TOKEN>`. Тела — JSON в UTF-8; даты —
ISO 8601. Ошибка — JSON `{"code", "message", "fields": [{"field", "message"}]}`; при 4xx ничего
не записывается (один запрос — одна транзакция)."""

COMMON_ERRORS: dict[int, str] = {
    400: "Тело запроса — не JSON",
    401: "Нет заголовка Authorization, неверный токен, или API отключён (не задан API_TOKEN)",
    413: "Тело запроса слишком большое",
    422: "Неверные данные или ссылка на неизвестную ОО или учётную запись; поле — в fields",
}


def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        parameters.append(
            {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "description": model.model_fields[name].description or "",
                "schema": prop,
            }
        )
    return parameters


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def build_document(endpoints: tuple[Endpoint, ...], *, version: str) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for endpoint in endpoints:
        if endpoint.body_model is not None:
            wanted.append((endpoint.body_model, "validation"))
        wanted += [(model, "serialization") for model, _ in endpoint.responses.values()]
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF_TEMPLATE)
    error = refs[(ErrorBody, "serialization")]

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        parameters = []
        if endpoint.path_model is not None:
            parameters += _parameters(endpoint.path_model, "path")
        if endpoint.query_model is not None:
            parameters += _parameters(endpoint.query_model, "query")
        responses: dict[str, Any] = {
            str(status): _json(refs[(model, "serialization")], description)
            for status, (model, description) in sorted(endpoint.responses.items())
        }
        errors = {401: COMMON_ERRORS[401], **endpoint.errors}
        if endpoint.body_model is not None:
            errors |= {s: COMMON_ERRORS[s] for s in (400, 413, 422)}
        elif endpoint.path_model is not None or endpoint.query_model is not None:
            errors[422] = "Неверный параметр; его имя — в fields"
        responses |= {str(s): _json(error, d) for s, d in sorted(errors.items())}
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "parameters": parameters,
            "responses": responses,
        }
        if endpoint.description:
            operation["description"] = endpoint.description
        if endpoint.body_model is not None:
            body_ref = refs[(endpoint.body_model, "validation")]
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_ref}},
            }
        paths.setdefault(PREFIX + endpoint.path, {})[endpoint.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Бот «Организация ДПО»: API интеграции",
            "version": version,
            "description": DESCRIPTION,
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Значение настройки API_TOKEN",
                }
            },
        },
    }
