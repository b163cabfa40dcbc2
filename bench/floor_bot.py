"""The throughput floor: a bare aiogram bot, long polling, that answers every update the way
a screen does (a button press: answer the callback and edit the message; a text: answer with a
message) and does nothing else: no database, no middlewares of ours. bench.throughput drives it
with the same workload as `python -m bot` to show what aiogram and HTTP alone cost here.

    BOT_TOKEN=… TELEGRAM_API_URL=… python -m bench.floor_bot
"""

from __future__ import annotations

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, Message


async def on_callback(callback: CallbackQuery) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(f"{callback.data} {callback.id}")


async def on_message(message: Message) -> None:
    await message.answer(f"{message.text}")


async def main() -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(os.environ["BOT_TOKEN"], session=session)
    dp = Dispatcher()
    dp.callback_query.register(on_callback)
    dp.message.register(on_message)
    await dp.start_polling(bot, handle_signals=True)


if __name__ == "__main__":
    asyncio.run(main())
