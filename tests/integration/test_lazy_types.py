"""bot/telegram/lazy_types.py: aiogram's types are built on first use, and each builds as it
would have."""

from __future__ import annotations

from tests.processes import fresh_python as run


def test_importing_the_bot_builds_no_aiogram_type() -> None:
    out = run(
        "import bot, aiogram.types as t\n"
        "built = [n for n in t.__all__ if getattr(getattr(t, n), '__pydantic_complete__', 0)]\n"
        "print(len(built))\n"
    )
    assert out.split() == ["0"]


def test_a_deferred_type_and_a_method_work_on_first_use() -> None:
    out = run(
        "import bot\n"
        "from aiogram.types import Update, InlineKeyboardMarkup, InlineKeyboardButton\n"
        "from aiogram.methods import SendMessage\n"
        "u = Update.model_validate({'update_id': 7, 'callback_query': {'id': 'q', 'data': 'd',"
        " 'chat_instance': 'c', 'from': {'id': 5, 'is_bot': False, 'first_name': 'Анна'},"
        " 'message': {'message_id': 3, 'date': 0, 'chat': {'id': 5, 'type': 'private'},"
        " 'text': 'x'}}})\n"
        "print(u.callback_query.from_user.first_name, u.callback_query.message.message_id)\n"
        "kb = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text='a',"
        " callback_data='b')]])\n"
        "m = SendMessage(chat_id=5, text='т', reply_markup=kb)\n"
        "print(m.model_dump(exclude_none=True)['reply_markup']['inline_keyboard'][0][0]"
        "['callback_data'])\n"
    )
    assert out.split() == ["Анна", "3", "b"]


def test_every_aiogram_type_and_method_still_builds() -> None:
    """Without the shared namespace a deferred type whose annotations name other types (imported
    in its module for type checkers only) fails to build on first use."""
    out = run(
        "import bot\n"
        "import aiogram.types as t, aiogram.methods as m\n"
        "models = [getattr(mod, n) for mod in (t, m) for n in mod.__all__]\n"
        "models = [c for c in models if hasattr(c, 'model_rebuild')]\n"
        "failed = [c.__name__ for c in models if c.model_rebuild() is False]\n"
        "print(len(models), len(failed), all(c.__pydantic_complete__ for c in models))\n"
    )
    count, failed, every = out.split()
    assert int(count) > 500
    assert (failed, every) == ("0", "True")


def test_nothing_is_deferred_once_aiogram_was_imported() -> None:
    out = run(
        "import aiogram.types as t\n"
        "from bot.telegram.lazy_types import defer_aiogram_types\n"
        "print(defer_aiogram_types(), t.Update.__pydantic_complete__)\n"
    )
    assert out.split() == ["False", "True"]
