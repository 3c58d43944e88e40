"""Notification templates: jinja2 files in `templates/` rendered into subject, text and HTML parts.

Each event has `<event>.subject.j2`, `<event>.txt.j2` and `<event>.html.j2`; the bodies
extend `_layout.txt.j2` / `_layout.html.j2`. A file in the override directory wins over
the shipped one of the same name, so an admin can change one template alone.

Context contract (every key must be present: a missing one is an error, not a blank):
  desk    {name, address, phone, hours, site}; phone and site may be "".
  ticket  {number, tag, subject, status, status_label, requester_name, requester_email,
          organisation, priority, priority_label, impact, impact_label, line, owner_name,
          created_at, due_at, close_reason_label} with dates as display strings, due_at ""
          when none, close_reason_label "" while open. None (or {}) for events not about one
          ticket (sender_refused, request_rejected, my_tickets) and, where noted, optional.
  Per event:
    ticket_created          acceptance_hours (int)
    info_requested          missing (list of Russian field labels), form (str, the blank form)
    attachment_refused      refused (list of {name, size (bytes or str), reason, reason_label}),
                            max_images, max_total_mb; ticket may be None. reason is one of
                            too_many_images, too_large, executable, type_not_allowed,
                            document_only (each adds its advice; others get the general one)
    agent_reply             text, agent_name
    status_changed          old_status_label, new_status_label
    info_needed             text (the agent's question), agent_name
    resolved                text (the agent's comment, may be ""), days (auto-close after)
    reopened                —
    reminder                close_date (str), close_reason (resolved or no_response)
    closed                  text (may be ""), close_reason (resolved, no_response, duplicate,
                            infeasible, cancelled, or ""), duplicate_of (the ticket number it
                            duplicates, or None)
    closed_reply            policy ("refuse" | "new"), old_number, new_number (None for
                            refuse); ticket is the new ticket for "new", the closed one else
    sender_refused          sender, allowed_domains (list), original_subject
    request_rejected        reason (no_subject, no_text, document_only, or another code),
                            reason_label, original_subject, form
    my_tickets              requester_name, organisation, tickets and organisation_tickets
                            (lists of {number, tag, subject, status_label, created_at}; the
                            organisation's also carry requester_name)
    agent_new_ticket        text
    agent_requester_replied text, author ("Name <address>")
    agent_command_error     errors (list of {line, error})
    sla_warning, sla_breach elapsed (str), deadline (str), stage (acceptance or resolution)
    outbox_held             recipient, count, period (e.g. "за сутки"),
                            held_subject; ticket may be None
Filters: `filesize` (bytes → "1,5 МБ"), `plural(one, few, many)` (Russian number
agreement), and in HTML `nl2br` (escapes, then keeps the line breaks).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from maildesk.core.outgoing import Rendered, RenderError

DEFAULT_DIRECTORY = Path(__file__).parents[2] / "templates"

REQUESTER_EVENTS: tuple[str, ...] = (
    "ticket_created", "info_requested", "attachment_refused", "agent_reply", "status_changed",
    "info_needed", "resolved", "reopened", "reminder", "closed", "closed_reply",
    "sender_refused", "request_rejected", "my_tickets",
)
AGENT_EVENTS: tuple[str, ...] = (
    "agent_new_ticket", "agent_requester_replied", "agent_command_error",
    "sla_warning", "sla_breach", "outbox_held",
)
EVENTS: tuple[str, ...] = REQUESTER_EVENTS + AGENT_EVENTS


class TemplateRenderer:
    """Renders one event's three templates; HTML is always autoescaped, text never is."""

    def __init__(self, directory: Path | None = None, override_dir: Path | None = None, *,
                 auto_reload: bool = True) -> None:
        """`auto_reload=False` keeps each file as first read (the daemon: only SIGHUP, after a check, changes them)."""
        self.directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        self.override_dir = Path(override_dir) if override_dir is not None else None
        search = [p for p in (self.override_dir, self.directory) if p is not None]
        loader = jinja2.FileSystemLoader([str(p) for p in search])
        # Two environments rather than autoescape by file name: an HTML part is escaped
        # whatever an admin names the file it extends or includes.
        self._text = _environment(loader, autoescape=False, auto_reload=auto_reload)
        self._html = _environment(loader, autoescape=True, auto_reload=auto_reload)
        self._html.filters["nl2br"] = _nl2br

    def render(self, event: str, context: Mapping[str, Any]) -> Rendered:
        if event not in EVENTS:
            raise RenderError(f"unknown event {event!r}")
        subject = self._render(self._text, f"{event}.subject.j2", context)
        text = self._render(self._text, f"{event}.txt.j2", context)
        html = self._render(self._html, f"{event}.html.j2", context)
        return Rendered(subject=" ".join(subject.split()), text=_tidy_text(text), html=html)

    def reload(self) -> None:
        """Forget compiled templates, so that files added or changed since are read again."""
        for env in (self._text, self._html):
            if env.cache is not None:
                env.cache.clear()

    def check(self) -> list[str]:
        """Problems an admin should hear about at start: missing files, errors with sample data."""
        problems = []
        if self.override_dir is not None and not self.override_dir.is_dir():
            problems.append(f"template override directory {self.override_dir} does not exist")
        for event in EVENTS:
            try:
                self.render(event, sample_context(event))
            except RenderError as exc:
                problems.append(str(exc))
        return problems

    @staticmethod
    def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
        try:
            return env.get_template(name).render(dict(context))
        except jinja2.TemplateNotFound as exc:
            raise RenderError(f"{name}: template not found ({exc})") from exc
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            raise RenderError(f"{name}: {exc}") from exc


def _environment(loader: jinja2.BaseLoader, *, autoescape: bool, auto_reload: bool = True) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=auto_reload,
        cache_size=-1,  # never evict: with auto_reload off, an evicted file would be read again unchecked
    )
    env.filters["filesize"] = _filesize
    env.filters["plural"] = _plural
    return env


def _tidy_text(text: str) -> str:
    """At most one blank line in a row, none at the start, one newline at the end."""
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text.replace("\r\n", "\n"))
    return text.strip("\n") + "\n"


def _nl2br(value: object) -> Markup:
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


def _filesize(size: int | str) -> str:
    if isinstance(size, str):
        return size
    if size < 1024:
        return f"{size} Б"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} КБ"
    return f"{size / (1024 * 1024):.1f} МБ".replace(".", ",")


def _plural(number: int | float, one: str, few: str, many: str) -> str:
    """The noun form that agrees with the number: 1 день, 2 дня, 5 дней, 21 день."""
    if isinstance(number, float) and not number.is_integer():
        return few  # "1,5 часа"
    n = abs(int(number))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


_FORM = (
    "Данные о заявителе (ФИО, должность, наименование МО, контактный телефон):\n"
    "ФИО пользователя, логин:\n"
    "Данные пациента (фамилия, инициалы, № карты):\n"
    "Последовательность выполняемых действий:\n"
    "Описание ошибки (текст по кнопке «Подробнее»):"
)
_DESK = {
    "name": "Служба технической поддержки ГБУЗС «МИАЦ»", "address": "help@sevmiac.ru",
    "phone": "8 (8692) 41-72-22", "hours": "пн–пт 08:00–17:00", "site": "https://help.sevmiac.ru",
}
_TICKET = {
    "number": 1234, "tag": "[СТП #1234]", "subject": "Не открывается расписание врача в МИС",
    "status": "new", "status_label": "Новая", "requester_name": "Иванова Мария Петровна",
    "requester_email": "m.ivanova@sev.gov.ru",
    "organisation": "ГБУЗС «Городская больница № 1 им. Н. И. Пирогова»",
    "priority": 3, "priority_label": "Обычный", "impact": "minor", "impact_label": "Малое",
    "line": 1, "owner_name": "", "created_at": "12.03.2025 09:41", "due_at": "13.03.2025 08:41",
    "close_reason_label": "",
}
_WORKING = {"status": "in_progress", "status_label": "Рассматривается", "owner_name": "Петров Сергей Николаевич"}
_ANSWER = "Очистите кэш браузера (Ctrl+Shift+Delete) и войдите в МИС заново.\nЕсли ошибка повторится, пришлите снимок экрана."
_EXTRAS: dict[str, dict[str, Any]] = {
    "ticket_created": {"acceptance_hours": 8},
    "info_requested": {"ticket": {"status": "feedback", "status_label": "Обратная связь"},
                       "missing": ["Контактный телефон", "Данные пациента"], "form": _FORM},
    "attachment_refused": {"refused": [
        {"name": "видео_ошибки.mp4", "size": 48_234_496, "reason": "too_large",
         "reason_label": "общий размер вложений больше 10 МБ"},
        {"name": "setup.exe", "size": 734_003, "reason": "executable",
         "reason_label": "исполняемые файлы не принимаются"},
        {"name": "снимок_6.png", "size": 212_992, "reason": "too_many_images",
         "reason_label": "больше 5 изображений без архива"}],
        "max_images": 5, "max_total_mb": 10},
    "agent_reply": {"ticket": _WORKING, "text": _ANSWER, "agent_name": "Петров Сергей Николаевич"},
    "status_changed": {"ticket": {**_WORKING, "status": "assigned", "status_label": "Назначена"},
                       "old_status_label": "Новая", "new_status_label": "Назначена"},
    "info_needed": {"ticket": {**_WORKING, "status": "feedback", "status_label": "Обратная связь"},
                    "text": "Уточните, пожалуйста, логин пользователя и время, когда появилась ошибка.",
                    "agent_name": "Петров Сергей Николаевич"},
    "resolved": {"ticket": {**_WORKING, "status": "resolved", "status_label": "Решена"},
                 "text": "Права доступа к расписанию восстановлены.", "days": 10},
    "reopened": {"ticket": _WORKING},
    "reminder": {"ticket": {**_WORKING, "status": "resolved", "status_label": "Решена"},
                 "close_date": "26.03.2025", "close_reason": "resolved"},
    "closed": {"ticket": {**_WORKING, "status": "closed", "status_label": "Закрыта",
                          "close_reason_label": "Закрыта из-за отсутствия ответа"}, "text": "",
               "close_reason": "no_response", "duplicate_of": None},
    "closed_reply": {"ticket": {"number": 1301, "tag": "[СТП #1301]"},
                     "policy": "new", "old_number": 1234, "new_number": 1301},
    "sender_refused": {"ticket": None, "sender": "m.ivanova@mail.ru", "allowed_domains": ["sev.gov.ru"],
                       "original_subject": "Не открывается расписание"},
    "request_rejected": {"ticket": None, "reason": "no_text", "reason_label": "в письме нет текста обращения",
                         "original_subject": "Заявка", "form": _FORM},
    "my_tickets": {"ticket": None, "requester_name": "Иванова Мария Петровна",
                   "organisation": _TICKET["organisation"],
                   "tickets": [{"number": 1234, "tag": "[СТП #1234]", "subject": _TICKET["subject"],
                                "status_label": "Рассматривается", "created_at": "12.03.2025 09:41"}],
                   "organisation_tickets": [{"number": 1240, "tag": "[СТП #1240]",
                                             "subject": "Не печатается направление на анализы",
                                             "status_label": "Новая", "created_at": "13.03.2025 11:05",
                                             "requester_name": "Сидоров Алексей Викторович"}]},
    "agent_new_ticket": {"text": "Данные о заявителе: Иванова М. П., инженер, ГБ № 1, 55-12-34\n"
                                 "При открытии расписания врача-терапевта появляется ошибка «Нет доступа»."},
    "agent_requester_replied": {"ticket": _WORKING, "text": "Логин: ivanova_mp. Ошибка появилась сегодня в 9:30.",
                                "author": "Иванова Мария Петровна <m.ivanova@sev.gov.ru>"},
    "agent_command_error": {"ticket": _WORKING, "errors": [
        {"line": "/priority 1", "error": "приоритет «Неотложный» не допускается при влиянии «Малое»"},
        {"line": "/status done", "error": "неизвестный статус «done»"}]},
    "sla_warning": {"elapsed": "6 ч 24 мин", "deadline": "13.03.2025 08:41", "stage": "acceptance"},
    "sla_breach": {"elapsed": "8 ч 5 мин", "deadline": "13.03.2025 08:41", "stage": "acceptance"},
    "outbox_held": {"recipient": "m.ivanova@sev.gov.ru", "count": 40, "period": "за сутки",
                    "held_subject": "[СТП #1234] Заявка решена, подтвердите результат"},
}


def sample_context(event: str) -> dict[str, Any]:
    """Realistic Russian context for an event: for previews, `maildesk check` and the tests."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    extras = copy.deepcopy(_EXTRAS[event])
    ticket_changes = extras.pop("ticket", {})
    ticket = None if ticket_changes is None else {**_TICKET, **ticket_changes}
    return {"desk": dict(_DESK), "ticket": ticket, **extras}
