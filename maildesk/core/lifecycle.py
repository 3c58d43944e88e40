"""Ticket statuses, close reasons, allowed transitions, and the impact → priority rules."""

from __future__ import annotations

import re

STATUS_LABELS = {
    "new": "Новая",
    "assigned": "Назначена",
    "in_progress": "Рассматривается",
    "feedback": "Обратная связь",
    "resolved": "Решена",
    "closed": "Закрыта",
}

OPEN_STATUSES = ("new", "assigned", "in_progress", "feedback", "resolved")
WAITING_STATUSES = ("feedback", "resolved")  # the requester is awaited; SLA clocks paused

CLOSE_REASON_LABELS = {
    "resolved": "Решена",
    "no_response": "Закрыта из-за отсутствия ответа",
    "duplicate": "Дубликат",
    "infeasible": "Невыполнимо",
    "cancelled": "Отменено",
}

# from-status → statuses it may move to (001 §4.8, 002)
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"assigned", "in_progress", "feedback", "resolved", "closed"}),
    "assigned": frozenset({"in_progress", "feedback", "resolved", "closed", "new"}),
    "in_progress": frozenset({"assigned", "feedback", "resolved", "closed"}),
    "feedback": frozenset({"in_progress", "assigned", "resolved", "closed"}),
    "resolved": frozenset({"in_progress", "closed"}),
    "closed": frozenset({"in_progress"}),
}

IMPACT_LABELS = {
    "feature": "Нововведение",
    "text": "Текст/опечатка",
    "tweak": "Настройка",
    "minor": "Малое",
    "major": "Большое",
    "critical": "Критический",
    "block": "Блокирующий",
}

PRIORITY_LABELS = {1: "Неотложный", 2: "Высокий", 3: "Обычный", 4: "Низкий"}

# impact → priorities it allows (001 §4.10); the first is the one set by default
IMPACT_PRIORITIES: dict[str, tuple[int, ...]] = {
    "critical": (1,),
    "block": (1,),
    "major": (2,),
    "minor": (2, 3),
    "tweak": (3, 4),
    "text": (4,),
    "feature": (4,),
}


def can_move(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def priority_allowed(impact: str | None, priority: int) -> bool:
    if priority not in PRIORITY_LABELS:
        return False
    return impact is None or priority in IMPACT_PRIORITIES[impact]


def default_priority(impact: str | None) -> int:
    return IMPACT_PRIORITIES[impact][0] if impact else 3


_IMPACT_WORDS = {label.lower(): key for key, label in IMPACT_LABELS.items()}
_IMPACT_WORDS.update({"текст": "text", "опечатка": "text", "блокирующее": "block", "критическое": "critical"})
_IMPACT_LINE = re.compile(r"^\s*влияние\s*[:\-–—]\s*(?P<value>[^\n]{1,40})$", re.IGNORECASE | re.MULTILINE)
_OUTAGE = re.compile(r"\bавария\b", re.IGNORECASE)


def stated_impact(subject: str, text: str) -> str | None:
    """The impact a requester states («Влияние: Критический», or АВАРИЯ in the subject)."""
    match = _IMPACT_LINE.search(text)
    if match:
        value = match.group("value").strip().strip(".").lower().replace("ё", "е")
        for word, key in _IMPACT_WORDS.items():
            if value.startswith(word.replace("ё", "е")):
                return key
    if _OUTAGE.search(subject):
        return "critical"
    return None


_CONFIRMATIONS = re.compile(
    r"\b(подтверждаю|ошибок\s+нет|ошибка\s+устранена|проверено|проблема\s+решена|"
    r"всё\s+работает|все\s+работает|можно\s+закрывать|заявку\s+можно\s+закрыть|спасибо,?\s+работает)\b",
    re.IGNORECASE,
)
_NEGATIONS = re.compile(r"\b(не\s+подтверждаю|не\s+работает|ошибка\s+осталась|не\s+решена|снова|опять)\b", re.IGNORECASE)


def is_confirmation(text: str) -> bool:
    """True when a requester's reply to a resolved ticket confirms the fix (002)."""
    head = text.strip()[:500]
    return bool(_CONFIRMATIONS.search(head)) and not _NEGATIONS.search(head)
