"""Typed callback data: short prefixes, Enum actions, integer ids; never names or Russian text
(Telegram allows 64 bytes). Every press is authorised again on the server: buttons can be forged.

Ids and pages are bounded, so forged data that would not fit the database is refused as
malformed (the press then reaches the last-resort handler) instead of reaching a query.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.domain import Role, Status

Number = Annotated[int, Field(ge=1, le=2**63 - 1)]
PageIndex = Annotated[int, Field(ge=0, le=100_000)]
BigId = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class MenuAction(StrEnum):
    HOME = "h"
    APPLICATIONS = "a"
    NOTIFICATIONS = "n"
    PROFILE = "p"
    HELP = "q"


class MenuCb(CallbackData, prefix="m"):
    action: MenuAction


class LinkAction(StrEnum):
    SWITCH = "sw"  # switch to the account of a redeemed token
    KEEP = "kp"  # keep the current account
    LOGOUT = "lo"  # /logout confirmed
    STAY = "st"  # /logout cancelled
    ALLOW_MOVE = "am"  # the bound owner lets the account move to another Telegram user
    DENY_MOVE = "dm"  # the bound owner keeps it


class LinkCb(CallbackData, prefix="l"):
    """Linking decisions; `token` is the id of the link token row to switch to, or of the
    request to move an account (0: none)."""

    action: LinkAction
    token: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0


class ConsentAction(StrEnum):
    ACCEPT = "ok"


class ConsentCb(CallbackData, prefix="c"):
    action: ConsentAction


class ProfileAction(StrEnum):
    ROLES = "r"  # list the account's roles
    SET_ROLE = "s"  # make `role` active


class ProfileCb(CallbackData, prefix="p"):
    action: ProfileAction
    role: Role | None = None


class StatusCode(StrEnum):
    """An application status in one letter: the status a screen showed when it was drawn."""

    NEW = "n"
    APPROVED = "a"
    CANCELLED = "c"
    INCLUDED = "i"

    @property
    def status(self) -> Status:
        return _STATUS_BY_CODE[self]

    @classmethod
    def of(cls, status: Status) -> StatusCode:
        return _CODE_BY_STATUS[status]


_STATUS_BY_CODE = {
    StatusCode.NEW: Status.NEW,
    StatusCode.APPROVED: Status.APPROVED,
    StatusCode.CANCELLED: Status.CANCELLED,
    StatusCode.INCLUDED: Status.INCLUDED,
}
_CODE_BY_STATUS = {status: code for code, status in _STATUS_BY_CODE.items()}


class ListFilter(StrEnum):
    """The status filter of an applications list: one status or all of them."""

    NEW = "n"
    APPROVED = "a"
    CANCELLED = "c"
    INCLUDED = "i"
    ALL = "x"

    @property
    def status(self) -> Status | None:
        return None if self is ListFilter.ALL else StatusCode(self.value).status


class ListAction(StrEnum):
    SHOW = "s"
    SEARCH = "f"  # ask for a name or number to search
    CLEAR = "x"  # drop the search, keep the filter


class ListCb(CallbackData, prefix="al"):
    """A page of the applications list; `search` applies the user's last search query,
    `narrowed` the organisation and programme the user chose (staff's filters)."""

    action: ListAction = ListAction.SHOW
    status_filter: ListFilter = ListFilter.NEW
    page: PageIndex = 0
    search: bool = False
    narrowed: bool = False


class AppAction(StrEnum):
    OPEN = "o"
    APPROVE = "ap"
    CANCEL = "c"
    INCLUDE = "in"
    COMMENTS = "cm"
    ADD_COMMENT = "ac"
    HISTORY = "h"
    CANCEL_CONFIRMED = "cy"  # «Да, отменить»: now ask for the reason
    APPROVE_NO_COMMENT = "an"  # «Без комментария» after «Одобрить»
    CANCEL_NO_COMMENT = "cn"  # «Без комментария» after «Отменить»
    INCLUDE_NO_COMMENT = "inn"  # «Без комментария» after «Включить в группу»
    ABORT = "x"  # «Отмена» of a pending input: back to the card, nothing changed


class AppCb(CallbackData, prefix="a"):
    """An action on one application.

    `page` is the page of a paginated view (history, comments). `status` is the status the
    screen showed (None on pushes, which are drawn later than their text was decided): a
    decision made from a screen that has gone stale meets the new status, not a blind write.
    `status_filter`, `list_page`, `search` and `narrowed` say which list «◀ К списку» returns to.
    """

    action: AppAction
    number: Number
    page: PageIndex = 0
    status: StatusCode | None = None
    status_filter: ListFilter = ListFilter.NEW
    list_page: PageIndex = 0
    search: bool = False
    narrowed: bool = False

    def to(self, action: AppAction, *, page: int = 0) -> AppCb:
        """The same application and list, another action."""
        return self.model_copy(update={"action": action, "page": page})

    def seen(self, status: Status) -> AppCb:
        return self.model_copy(update={"status": StatusCode.of(status)})

    def back_to_list(self) -> ListCb:
        return ListCb(
            status_filter=self.status_filter,
            page=self.list_page,
            search=self.search,
            narrowed=self.narrowed,
        )


class Facet(StrEnum):
    """A filter of staff's list beside the status: by organisation or by programme."""

    ORGANIZATION = "o"
    PROGRAM = "p"


class FacetAction(StrEnum):
    CHOOSE = "c"  # a page of the organisations (programmes) to choose from
    SET = "s"  # narrow the list to the chosen one
    CLEAR = "x"  # every organisation (programme) again


class FacetCb(CallbackData, prefix="af"):
    """Choosing an organisation or a programme for the list.

    `choice` is an id, never a name: an organisation's id, or for a programme the number of an
    application with that programme (programmes have no ids of their own). `status_filter`,
    `search` and `narrowed` are the list the choice applies to.
    """

    action: FacetAction
    facet: Facet
    choice: BigId = 0
    page: PageIndex = 0
    status_filter: ListFilter = ListFilter.APPROVED
    search: bool = False
    narrowed: bool = False

    def back_to_list(self) -> ListCb:
        return ListCb(status_filter=self.status_filter, search=self.search, narrowed=self.narrowed)


class NotifyAction(StrEnum):
    MUTE = "m"
    UNMUTE = "u"
    DIGEST_OFF = "d0"
    DIGEST_ON = "d1"


class NotifyCb(CallbackData, prefix="nt"):
    """A setting of «🔔 Уведомления»; each action sets a state, so a repeated press is harmless."""

    action: NotifyAction
