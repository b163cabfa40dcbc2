"""Pushes (notifications) as pure functions of plain data, built from the card's pieces: one
status label, one «Не указано», one way to shorten.

With `hide_names` (HIDE_NAMES_IN_PUSHES) a push carries the number, the programme and the
status only; names and comments stay on the card (docs/privacy.md).
"""

from __future__ import annotations

from bot.conversation.intents import AppAction, AppIntent, MenuAction, MenuIntent
from bot.screens.markup import escape, shorten
from bot.screens.pieces import or_not_set, short_name, status_label, study_dates
from bot.screens.screen import Button, Row, Screen
from bot.texts import pushes as texts
from bot.texts.domain import role_label
from services.domain import Status
from services.views import ApplicationView, EventView

PROGRAM_LENGTH = 200
DIGEST_PROGRAM_LENGTH = 60
DIGEST_NAME_LENGTH = 60
COMMENT_LENGTH = 1500
# A person's name (up to 255 characters) as it costs once escaped: one of letters and emoji (two
# UTF-16 units each at most) stays whole; one full of `"` `&` `<` `>` (up to six each) is cut.
NAME_LENGTH = 600


def open_button(number: int) -> Button:
    return Button(texts.BUTTON_OPEN, AppIntent(action=AppAction.OPEN, number=number))


def decision_buttons(number: int) -> tuple[Row, ...]:
    """«✅ Одобрить» «❌ Отменить» and «Подробнее», right in the push."""
    return (
        (
            Button(texts.BUTTON_APPROVE, AppIntent(action=AppAction.APPROVE, number=number)),
            Button(texts.BUTTON_CANCEL, AppIntent(action=AppAction.CANCEL, number=number)),
        ),
        (open_button(number),),
    )


def clip(value: str | None, limit: int) -> str:
    """A value for a push, cut to `limit`, escaped; «Не указано» if missing."""
    return escape(shorten(or_not_set(value), limit))


def program_line(application: ApplicationView) -> str:
    return texts.PROGRAM.format(program=clip(application.program, PROGRAM_LENGTH))


def person(value: str) -> str:
    """A person's name for a push, cut to NAME_LENGTH, escaped: with the programme and the
    comment cut too, a push stays within the messengers' limits whatever the names."""
    return escape(shorten(value, NAME_LENGTH))


def applicant_line(application: ApplicationView) -> str:
    return texts.APPLICANT.format(name=person(application.applicant_name))


def actor_line(event: EventView) -> str:
    if event.actor_role is None:
        changed = event.to_status is not None and event.to_status is not event.from_status
        return texts.ACTOR_WEB_MODULE if changed else texts.ACTOR_WEB_MODULE_COMMENT
    return texts.ACTOR.format(name=person(event.actor_name), role=role_label(event.actor_role))


def comment_lines(event: EventView, hide_names: bool, hint: str) -> list[str]:
    if not event.comment:
        return []
    if hide_names:
        return [hint]
    return [texts.COMMENT.format(comment=clip(event.comment, COMMENT_LENGTH))]


def new_application(application: ApplicationView, *, hide_names: bool, own: bool = False) -> Screen:
    """To a director of the applicant's organisation, with the decision buttons while the
    application waits for them; `own`: it is the director's own application, which he may not
    decide (services.domain.own_decision_refusal), so the push says why and offers the card."""
    lines = [texts.NEW_APPLICATION_TITLE.format(number=application.number)]
    if not hide_names:
        lines.append(applicant_line(application))
    lines.append(program_line(application))
    if not hide_names:
        dates = study_dates(application.study_from, application.study_to)
        lines.append(texts.STUDY_DATES.format(dates=dates))
    lines.append(texts.STATUS.format(status=status_label(application.status)))
    if application.status is Status.NEW and own:
        lines.append(texts.OWN_APPLICATION)
        return Screen("\n".join(lines), ((open_button(application.number),),))
    if application.status is Status.NEW:
        return Screen("\n".join(lines), decision_buttons(application.number))
    lines.append(texts.ALREADY_PROCESSED)
    return Screen("\n".join(lines), ((open_button(application.number),),))


def status_changed(
    application: ApplicationView, event: EventView, *, to_applicant: bool, hide_names: bool
) -> Screen:
    """To the applicant (and to the directors when the applicant or staff acted)."""
    lines = [texts.STATUS_CHANGED_TITLE.format(number=application.number)]
    if not hide_names and not to_applicant:
        lines.append(applicant_line(application))
    lines.append(program_line(application))
    lines.append(
        texts.STATUS_MOVE.format(
            from_status=status_label(event.from_status), to_status=status_label(event.to_status)
        )
    )
    if not hide_names:
        lines.append(actor_line(event))
    lines += comment_lines(event, hide_names, texts.COMMENT_ON_CARD)
    return Screen("\n".join(lines), ((open_button(application.number),),))


def comment(
    application: ApplicationView, event: EventView, *, to_applicant: bool, hide_names: bool
) -> Screen:
    """To the other side of the application: the applicant or the directors."""
    lines = [texts.COMMENT_TITLE.format(number=application.number)]
    if not hide_names and not to_applicant:
        lines.append(applicant_line(application))
    lines.append(program_line(application))
    lines.append(texts.STATUS.format(status=status_label(application.status)))
    if not hide_names:
        lines.append(actor_line(event))
    lines += comment_lines(event, hide_names, texts.COMMENT_TEXT_ON_CARD)
    return Screen("\n".join(lines), ((open_button(application.number),),))


def digest(count: int, oldest: list[ApplicationView], *, hide_names: bool) -> Screen:
    """To a director: the organisation's applications «Не обработана», the oldest first."""
    lines = [texts.DIGEST_TITLE, texts.DIGEST_COUNT.format(count=count), ""]
    for application in oldest:
        number = application.number
        program = clip(application.program, DIGEST_PROGRAM_LENGTH)
        if hide_names:
            lines.append(texts.DIGEST_LINE_NO_NAME.format(number=number, program=program))
        else:
            name = clip(short_name(application.applicant_name), DIGEST_NAME_LENGTH)
            lines.append(texts.DIGEST_LINE.format(number=number, name=name, program=program))
    if count > len(oldest):
        lines.append(texts.DIGEST_MORE.format(count=count - len(oldest)))
    lines += ["", texts.DIGEST_HINT]
    button = Button(texts.BUTTON_APPLICATIONS, MenuIntent(MenuAction.APPLICATIONS))
    return Screen("\n".join(lines), ((button,),))


def staff_digest(by_organization: list[tuple[str, int]]) -> Screen:
    """To staff: director-approved applications waiting for inclusion, by organisation."""
    total = sum(count for _, count in by_organization)
    lines = [texts.STAFF_DIGEST_TITLE, texts.STAFF_DIGEST_COUNT.format(count=total), ""]
    shown = by_organization[: texts.STAFF_DIGEST_ORGANIZATIONS]
    for name, count in shown:
        organization = clip(name, texts.STAFF_DIGEST_NAME_LENGTH)
        lines.append(texts.STAFF_DIGEST_LINE.format(organization=organization, count=count))
    rest = sum(count for _, count in by_organization[len(shown) :])
    if rest:
        lines.append(texts.DIGEST_MORE.format(count=rest))
    lines += ["", texts.STAFF_DIGEST_HINT]
    button = Button(texts.BUTTON_APPLICATIONS, MenuIntent(MenuAction.APPLICATIONS))
    return Screen("\n".join(lines), ((button,),))
