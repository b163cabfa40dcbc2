"""How a benchmark was run: the machine, its load, Python, the packages, the database."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from sqlalchemy.engine import make_url

PACKAGES = ("aiogram", "aiohttp", "SQLAlchemy", "aiosqlite", "asyncpg", "pydantic")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def packages() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} -")
    return ", ".join(versions)


def database(url: str) -> str:
    """The backend and its file or server, without credentials."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite (WAL) {parsed.database}"
    return f"PostgreSQL {parsed.host}:{parsed.port or 5432}/{parsed.database}"


def describe(*databases: str) -> list[str]:
    """Lines saying how the figures were obtained."""
    lines = [
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average {load_average()}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        f"packages: {packages()}",
    ]
    lines += [f"database: {database(url)}" for url in databases]
    return lines
