"""The deployment files agree with the code: docker-compose.yml (the scaled layout), the nginx
config, the Dockerfile, .env.example, and docs/DEPLOYMENT.md's SQLite backup command.

Docker itself is not run here; these checks read the files."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from bot.settings import Settings, load_settings
from bot.webhook import WEBHOOK_PATH
from storage.db import create_engine
from storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
BOT_SERVICES = ("bot-1", "bot-2")
REDIS_PASSWORD = "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_has_the_scaled_layout(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", *BOT_SERVICES, "dispatcher", "nginx"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["nginx"]["image"].startswith("nginx:")
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_bot_services_use_postgresql_redis_and_listen_for_nginx(compose: dict[str, Any]) -> None:
    for name in (*BOT_SERVICES, "dispatcher", "migrate"):
        service = compose["services"][name]
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://dpo:")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/dpo")
        assert environment["REDIS_URL"] == f"redis://:{REDIS_PASSWORD}@redis:6379/0"
        assert environment["WEB_HOST"] == "0.0.0.0"
        assert service["env_file"] == ".env"
        assert service["build"] == "."


def test_only_the_dispatcher_sends_notifications(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in BOT_SERVICES:
        settings = Settings(_env_file=None, **services[name]["environment"])  # type: ignore[arg-type]
        assert settings.NOTIFY_IN_BOT is False
    senders = [s for s in services.values() if s.get("command", [])[-1:] == ["dispatcher"]]
    assert len(senders) == 1


def test_the_settings_in_compose_are_valid_settings(compose: dict[str, Any]) -> None:
    environment = dict(compose["services"]["bot-1"]["environment"])
    environment["DATABASE_URL"] = environment["DATABASE_URL"].replace(
        "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}", "secret"
    )
    environment["REDIS_URL"] = environment["REDIS_URL"].replace(REDIS_PASSWORD, "0a1b2c")
    settings = Settings(_env_file=None, **environment)  # type: ignore[arg-type]
    assert settings.WEB_PORT == 8080
    assert settings.REDIS_URL == "redis://:0a1b2c@redis:6379/0"


def test_redis_requires_the_password_the_bots_use(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == REDIS_PASSWORD
    assert redis["environment"]["REDISCLI_AUTH"] == REDIS_PASSWORD  # the health check logs in
    assert "PONG" in redis["healthcheck"]["test"][-1]  # a refused ping fails the check


def test_replicas_and_dispatcher_start_after_migrations_and_redis(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in (*BOT_SERVICES, "dispatcher"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
        assert "command" not in services[name] or name == "dispatcher"
    assert services["dispatcher"]["command"] == ["python", "-m", "bot", "dispatcher"]
    assert services["migrate"]["command"] == ["python", "-m", "bot", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    nginx_depends = services["nginx"]["depends_on"]
    assert {name: d["condition"] for name, d in nginx_depends.items()} == dict.fromkeys(
        BOT_SERVICES, "service_healthy"
    )


def test_nginx_proxies_the_public_paths_to_both_replicas(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["nginx"]["volumes"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.search(r"upstream dpo_bot \{(.*?)\}", config, re.S)
    assert upstream is not None
    assert re.findall(r"server (bot-\d):8080", upstream.group(1)) == list(BOT_SERVICES)
    locations = dict(re.findall(r"location ([=/\w ]+?) \{(.*?)\}", config, re.S))
    assert set(locations) == {f"= {WEBHOOK_PATH}", "/link/", "/api/", "/"}
    for path in (f"= {WEBHOOK_PATH}", "/link/", "/api/"):
        assert "proxy_pass http://dpo_bot;" in locations[path]
    assert "return 404;" in locations["/"]  # /healthz and /metrics are not published
    # the API only to the web module's addresses: each an `allow`, then `deny all` last
    rules = re.findall(r"^\s*(allow|deny) ([^;]+);", locations["/api/"], re.M)
    assert rules[-1] == ("deny", "all")
    assert rules[:-1]
    assert all(kind == "allow" and target != "all" for kind, target in rules[:-1])
    assert "The API's allow-list" in (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    assert "listen 443 ssl;" in config
    assert "ssl_certificate     /etc/nginx/tls/fullchain.pem;" in config


def test_the_image_runs_the_bot_and_checks_its_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "bot"]' in dockerfile
    assert "http://127.0.0.1:8080/healthz" in dockerfile
    assert "USER dpo" in dockerfile
    for folder in ("bot", "handlers", "services", "storage"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored  # secrets never end up in the image
    assert "data/" in ignored


def test_a_copy_of_env_example_with_a_token_is_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = (ROOT / ".env.example").read_text().replace("BOT_TOKEN=\n", "BOT_TOKEN=123456:TEST\n")
    (tmp_path / ".env").write_text(env)
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.REDIS_URL is None
    assert not settings.webhook_mode
    documented = set(re.findall(r"^([A-Z_]+)=", env, re.M))
    assert documented == set(Settings.model_fields)


def test_the_deployment_guide_names_the_webhook_path_and_the_backup_command() -> None:
    guide = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    assert f"`PUBLIC_URL` + `{WEBHOOK_PATH}`" in guide
    assert "sqlite3 data/dpo-bot.sqlite3 \".backup 'backups/dpo-bot-$(date +%F).sqlite3'\"" in guide
    assert "ExecStart=/opt/dpo-bot/.venv/bin/python -m bot" in guide
    assert "docker-compose.yml" in guide


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command is not installed")
async def test_the_documented_backup_copies_a_live_wal_database(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "backups").mkdir()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'dpo-bot.sqlite3'}")
    try:
        await upgrade(engine)
        async with engine.connect() as reader:  # the running bot keeps connections open
            await reader.execute(text("SELECT 1"))
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO organizations (id, name, updated_at) "
                        "VALUES (10, 'МАОУ СОШ №1', '2026-09-01 06:00:00')"
                    )
                )
            assert (tmp_path / "data" / "dpo-bot.sqlite3-wal").stat().st_size > 0
            backup = "backups/dpo-bot.sqlite3"
            process = await asyncio.create_subprocess_exec(
                "sqlite3", "data/dpo-bot.sqlite3", f".backup '{backup}'", cwd=tmp_path
            )
            assert await process.wait() == 0
    finally:
        await engine.dispose()
    check = await asyncio.create_subprocess_exec(
        "sqlite3",
        str(tmp_path / "backups" / "dpo-bot.sqlite3"),
        "PRAGMA integrity_check; SELECT name FROM organizations;",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await check.communicate()
    assert out.decode().split("\n")[:2] == ["ok", "МАОУ СОШ №1"]


def test_env_example_lists_every_setting_once() -> None:
    names = re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert sorted(names) == sorted(set(names))
    assert set(names) == set(Settings.model_fields)
