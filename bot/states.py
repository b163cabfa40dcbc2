"""FSM states of text inputs on application screens (a comment, a search query).

The FSM data of an input names the prompt message (`prompt`) and the card it belongs to
(`card`, a packed AppCb). Any button press or command other than /cancel abandons a pending
input (bot.middlewares.AbandonInputMiddleware), so a stray text never becomes a decision.
"""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class AppInput(StatesGroup):
    decision_comment = State()  # the comment of an approval or a cancellation (optional)
    comment = State()  # a comment to the application's thread
    search = State()  # a name or a number to search the list for
