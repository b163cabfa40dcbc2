"""The real `python -m bot` as a child process of a test: started with a clean environment,
its stderr in a file, stopped with SIGTERM (or killed), waited for with a deadline; or a
command run to its end with its output captured (`run_bot`)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTING_NAMES = set(Settings.model_fields)
START_LIMIT = 60.0  # seconds: starting Python and importing aiogram is slow on a loaded machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """The environment of a child bot: no inherited bot settings, the project importable."""
    env = {key: value for key, value in os.environ.items() if key not in SETTING_NAMES}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def fresh_python(code: str) -> str:
    """Run `code` in a fresh interpreter of the project (nothing imported yet, nothing of the
    environment but the project's path): what it printed. Fails the test if it fails."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def sqlite_url(workdir: Path) -> str:
    """The database of a child bot that keeps its data in `workdir`."""
    return f"sqlite+aiosqlite:///{workdir / 'bot.sqlite3'}"


def bot_env(workdir: Path, **values: str) -> dict[str, str]:
    """`clean_env` with the data in a SQLite file in `workdir` unless `values` name a
    DATABASE_URL."""
    return clean_env(**{"DATABASE_URL": sqlite_url(workdir), **values})


async def run_bot(workdir: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """`python -m bot …` run to its end in `workdir` (no .env of a developer's checkout), with
    `bot_env`: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=workdir,
        env=bot_env(workdir, **env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=START_LIMIT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _log_in(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir / "stderr.log"


@dataclass
class BotProcess:
    """One `python -m bot …` process."""

    process: asyncio.subprocess.Process
    log: Path
    stop_asked: bool = False

    @classmethod
    async def start(cls, workdir: Path, *args: str, **env: str) -> BotProcess:
        log = _log_in(workdir)
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                *args,
                cwd=workdir,
                env=clean_env(**env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        return cls(process, log)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait_for(self, condition: Callable[[], bool], limit: float = START_LIMIT) -> None:
        """Wait until `condition()` holds; fail if the process exits or the limit passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not condition():
            if self.process.returncode is not None:
                raise AssertionError(f"the bot exited with {self.returncode}: {self.stderr()}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for the bot: {self.stderr()}")
            await asyncio.sleep(0.05)

    async def exited(self, limit: float = START_LIMIT) -> int:
        """Wait for the process to end by itself (a command that runs and exits); its code."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout=limit)
        except TimeoutError:
            raise AssertionError(f"the command did not end: {self.stderr()}") from None
        assert self.process.returncode is not None
        return self.process.returncode

    def ask_to_stop(self) -> None:
        """SIGTERM, once (a second one would end the bot at once), without waiting for the
        exit: `terminate` waits."""
        if self.process.returncode is None and not self.stop_asked:
            self.process.send_signal(signal.SIGTERM)
            self.stop_asked = True

    async def terminate(self, limit: float = 60.0) -> int:
        """SIGTERM and wait for the exit (killed if it does not come); the exit code."""
        if self.process.returncode is None:
            self.ask_to_stop()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=limit)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"the bot did not stop on SIGTERM: {self.stderr()}") from None
        assert self.process.returncode is not None
        return self.process.returncode

    async def kill(self) -> None:
        """SIGKILL: nothing of the process gets to run again."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def running(workdir: Path, *args: str, **env: str) -> AsyncIterator[BotProcess]:
    """`python -m bot …` (BotProcess.start) for the duration of the block, killed at its end if
    it still runs: a block that checks a clean stop ends with `terminate()`."""
    bot = await BotProcess.start(workdir, *args, **env)
    try:
        yield bot
    finally:
        await bot.kill()
