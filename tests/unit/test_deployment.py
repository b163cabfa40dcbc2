"""The deployment files agree with the code: docker-compose.yml (the scaled layout), the nginx
config, the Dockerfile and its lock file, .env.example, and docs/DEPLOYMENT.md's SQLite backup
command.

Docker itself is not run here; these checks read the files."""

from __future__ import annotations

import asyncio
import re
import shutil
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from sqlalchemy import text

from bot.max.webhook import MAX_WEBHOOK_PATH
from bot.settings import Settings, load_settings
from bot.telegram.webhook import WEBHOOK_PATH
from storage.db import create_engine
from storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
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
    assert set(locations) == {f"= {WEBHOOK_PATH}", f"= {MAX_WEBHOOK_PATH}", "/link/", "/api/", "/"}
    for path in (f"= {WEBHOOK_PATH}", f"= {MAX_WEBHOOK_PATH}", "/link/", "/api/"):
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


# -- the Docker image's lock ----------------------------------------------------------------------

# The image's interpreter and platform (Dockerfile: python:3.12-slim), for environment markers.
IMAGE_ENVIRONMENT = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}


def read_lock() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {name: (version, hashes)}."""
    text = (ROOT / "requirements.lock").read_text()
    pinned: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=\S)", text):
        head = re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry)
        if head is not None:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
            pinned[canonicalize_name(head[1])] = (head[2], hashes)
    return pinned


def project_requirements() -> list[Requirement]:
    """What the image installs from the lock: the project's dependencies and its build
    requirements (the project is installed without build isolation)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    spelled = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    return [Requirement(requirement) for requirement in spelled]


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    """Offline: every requirement of pyproject.toml, and (as far as this environment has the
    locked versions installed to read their metadata) every requirement of theirs, for the
    image's Python, is pinned within its range; every pin has hashes. `make lock-check` checks
    the same against PyPI, downloading the files."""
    lock = read_lock()
    assert lock, "requirements.lock is empty"
    assert "make lock" in (ROOT / "requirements.lock").read_text().split("\n", 3)[1]
    assert [name for name, (_, hashes) in lock.items() if not hashes] == []
    problems: list[str] = []
    queue = [(requirement, "pyproject.toml") for requirement in project_requirements()]
    seen: set[tuple[str, str]] = set()
    while queue:
        requirement, needed_by = queue.pop()
        name = canonicalize_name(requirement.name)
        if name not in lock:
            problems.append(f"{requirement} (for {needed_by}) is not in requirements.lock")
            continue
        version = lock[name][0]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} (for {needed_by}): the lock has {version}")
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(installed.version) != Version(version):
            continue  # another version here: its requirements are make lock-check's to see
        for extra in ["", *sorted(requirement.extras)]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for spelled in installed.requires or []:
                dependency = Requirement(spelled)
                marker = dependency.marker
                if marker is None or marker.evaluate({**IMAGE_ENVIRONMENT, "extra": extra}):
                    queue.append((dependency, f"{name}=={version}"))
    assert problems == []


def test_the_image_installs_the_lock_then_the_project_alone() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in dockerfile  # the Python the lock is made for (Makefile)
    lock_install = "RUN pip install --require-hashes --only-binary=:all: -r requirements.lock"
    project_install = "RUN pip install --no-deps --no-build-isolation ."
    assert dockerfile.index("COPY requirements.lock ./") < dockerfile.index(lock_install)
    assert dockerfile.index(lock_install) < dockerfile.index(project_install)
    assert "LOCK_PYTHON := 3.12" in (ROOT / "Makefile").read_text()
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text()


def test_a_copy_of_env_example_with_a_token_is_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = re.sub(
        r"^BOT_TOKEN=$", "BOT_TOKEN=123456:TEST", (ROOT / ".env.example").read_text(), flags=re.M
    )
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
