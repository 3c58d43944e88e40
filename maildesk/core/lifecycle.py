"""Ticket statuses, close reasons, allowed transitions, and the impact → priority rules."""

from __future__ import annotations

import re

from maildesk.core.mime_text import strip_quoted

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


def raises_impact(old: str | None, new: str | None) -> bool:
    """True when `new` is a heavier impact than `old` (the labels run from the lightest); unset raises nothing."""
    order = tuple(IMPACT_LABELS)
    return old is not None and new is not None and order.index(new) > order.index(old)


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


# The reply's gist must be a confirmation: after a greeting, at the very start, in a short reply.
_GREETING = re.compile(
    r"^(?:добрый\s+(?:день|вечер)|доброе\s+утро|здравствуйте|приветствую|да|спасибо(?:\s+большое)?|благодарю)"
    r"(?=[\s,.!:;—–-]|$)[\s,.!:;—–-]*"
)
_NAME = re.compile(r"^[^\s,.!?]+(?:\s+[^\s,.!?]+){0,2}\s*!\s*")  # «Пётр Иванович!» after a greeting
_CONFIRMATION = re.compile(
    r"^(?:подтвержда(?:ю|ем)|проверен[оа]|проверил[аи]?|ошиб(?:ок|ки)\s+(?:больше\s+)?нет|"
    r"ошибк[аи]\s+устранен[аы]|проблема\s+(?:решена|устранена)|вопрос\s+решен|"
    r"(?:теперь\s+|сейчас\s+)?(?:все\s+)?работает|(?:все\s+)?получилось|помогло|(?:все\s+)?исправлено|"
    r"(?:заявку\s+)?можно\s+закры(?:вать|ть)|закрывайте)(?![а-я])"
)
# Said positively, these phrases hold words that otherwise signal trouble («ошибок нет»).
_POSITIVE = re.compile(
    r"(?:ошиб(?:ок|ки)|замечаний|претензий|вопросов|проблем)\s+(?:больше\s+)?нет|ошибк[аи]\s+устранен[аы]|"
    r"проблема\s+(?:решена|устранена)"
)
# Any of these anywhere means the requester is not (yet) confirming: the ticket is reopened instead.
_TROUBLE = re.compile(
    r"(?<![а-я])(?:не|нет|ни|нельзя|невозможно|по-?прежнему|все\s+(?:еще|равно)|до\s+сих\s+пор|так\s*же|тоже|"
    r"т[аоу]\s+же|тот\s+же|такая\s+же|ошиб[а-я]*|проблем[а-я]*|снова|опять|остал[а-я]*|пока|но|однако|только|"
    r"частично|иногда|периодически|через\s+раз|перестал[а-я]*|пропал[а-я]*|сбо[йяи][а-я]*|завис[а-я]*|"
    r"вылета[а-я]*|провер(?:ю|им)|посмотр(?:ю|им)|позже|завтра|получени[а-я]*)(?![а-я])|\?"
)
_QUOTE_HEADER = re.compile(r"(?:пишет|писал(?:\(а\)|а)?|написал[аи]?|wrote)\s*:\s*$")
_SIGNATURE = re.compile(r"^(?:--|с\s+уважением|best\s+regards|отправлено\s+(?:с|из)|sent\s+from)(?![а-яa-z])")
_SHORT = 200  # characters: a confirmation is a short reply, not a report


def own_text(text: str) -> str:
    """The requester's own new words, on one line: quoted lines, quote headers and the signature dropped."""
    kept = []
    for line in strip_quoted(text).splitlines():
        line = line.strip().lower().replace("ё", "е")
        if _SIGNATURE.match(line):
            break
        if line and not line.startswith(">") and not _QUOTE_HEADER.search(line):
            kept.append(line)
    return " ".join(" ".join(kept).split())


def is_confirmation(text: str) -> bool:
    """True when a requester's reply to a resolved ticket confirms the fix (002).

    Strict on purpose: a wrong close loses a problem, a wrong reopen costs an agent a look.
    The reply must open with a confirmation («Подтверждаю», «Проверено, всё работает»), be
    short, and carry no sign of trouble («не», «по-прежнему», «ошибка», «снова», a question).
    """
    own = own_text(text)
    if not own or len(own) > _SHORT or not _CONFIRMATION.match(_gist(own)):
        return False
    return not _TROUBLE.search(_POSITIVE.sub(" ", own))


def _gist(own: str) -> str:
    """The reply without its greeting: «Добрый день! Спасибо, …», «Здравствуйте, Пётр Иванович! …»."""
    gist = own
    for _ in range(3):
        rest = _GREETING.sub("", gist, count=1)
        if rest == gist:
            break
        gist = rest if _CONFIRMATION.match(rest) else _NAME.sub("", rest, count=1)
    return gist
