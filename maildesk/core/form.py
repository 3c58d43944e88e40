"""Read the request form's fields (001 §3.4, Appendix 1) from a mail's text by their Russian labels.

A field is a line starting with its label (optionally numbered or bulleted, any case,
ё or е, a hint in brackets) followed by a colon, a dash, a tab or the end of the line,
in which case the value is on the next line. Besides the variants and typos people
actually write («Фамилия, имя, отчество», «Телефон для связи», «Дожность»), a label of
six letters or more may have one letter wrong, missing or extra («Описание ошибкы:»),
but then only before a colon, a tab or a spaced dash, so that sentences stay text.
The phone counts as given when it is labelled, or when the text holds a recognisable
Russian number anywhere (signatures included): a full +7/8 number, a city number
written 41-72-22, or a short internal number right after "тел."/"доб."/"вн.".
A missing field never blocks a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from maildesk.core.ticketref import strip_tag_and_prefixes


@dataclass(frozen=True)
class FormPolicy:
    required: tuple[str, ...] = ("subject", "text", "phone")  # keys of FIELD_LABELS
    max_value_chars: int = 2000


@dataclass(frozen=True)
class FormResult:
    fields: Mapping[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()


FIELD_LABELS: Mapping[str, str] = MappingProxyType({
    "subject": "Тема письма (заголовок заявки)",
    "text": "Описание проблемы",
    "applicant_name": "ФИО заявителя",
    "position": "Должность",
    "organisation": "Медицинская организация (МО)",
    "phone": "Контактный телефон",
    "user_name": "ФИО пользователя",
    "login": "Логин пользователя",
    "patient": "Данные пациента (фамилия, инициалы, № карты)",
    "steps": "Последовательность действий",
    "error_text": "Описание ошибки (текст по кнопке «Подробнее»)",
})

FORM_TEMPLATE = """\
Данные о заявителе
ФИО заявителя:
Должность:
Медицинская организация (МО):
Контактный телефон:

Данные о пользователе
ФИО пользователя:
Логин пользователя:

Данные пациента (фамилия, инициалы, № карты):

Последовательность действий:

Описание ошибки (текст по кнопке «Подробнее»):

Скриншоты: приложите к письму файлы JPG, GIF или PNG; если их больше 5, упакуйте их в архив \
zip, 7z или rar. Общий размер вложений не более 10 МБ.
"""

_FIO = r"(?:ф\.?\s*и\.?\s*о\.?|фамилия[,\s]+имя[,\s]+отчество)"
# Most specific first: "ФИО пользователя" before "ФИО", "Данные пациента" before "Пациент".
# Keys ending in "+" are the regulation's combined fields; None marks headings that end a value.
# The typos and variants are the ones people write in real requests.
_LABELS: tuple[tuple[str | None, str], ...] = (
    ("user+", _FIO + r"\s+пользовател[яь]\s*,\s*логин"),
    ("user_name", _FIO + r"\s+пользовател[яь]"),
    ("patient", _FIO + r"\s+(?:пациента|больного)|данные\s+(?:о\s+)?пациент[ае]|пациент"),
    ("applicant+", r"данные\s+(?:о\s+)?заявител[ея]"),
    ("applicant_name", _FIO + r"(?:\s+(?:заявителя|обратившегося|сотрудника))?"),
    ("position", r"(?:занимаемая\s+)?(?:должность|должнось|дожность)"),
    ("organisation", r"(?:наименование\s+)?(?:мо|медицинская\s+организация|мед\.?\s*организация"
                     r"|организаци[яи](?:\s*/\s*учреждени[яе])?|учреждени[ея]|лпу)|место\s+работы"),
    ("phone", r"(?:контактный\s+)?(?:номер\s+)?(?:телефона?|тел\.?|моб\.?|мобильный(?:\s+телефон)?)"
              r"(?:\s+для\s+связи)?"),
    ("login", r"(?:логин|учетная\s+запись|login)(?:\s+(?:пользователя|в\s+мис|мис))?|имя\s+пользователя"),
    ("steps", r"последовательность\s+(?:выполняемых\s+)?(?:действий|дейсвий)|шаги(?:\s+воспроизведения)?"
              r"|порядок\s+действий"),
    ("error_text", r"описание\s+(?:ошибки|проблемы)|текст\s+(?:сообщения\s+)?об?\s+ошибке|текст\s+ошибки|ошибка"),
    (None, r"данные\s+(?:о\s+)?пользовател[ея]|скриншоты|тема"),
)
# One pattern for every label, tried in the table's order (alternation backtracks like a loop over
# them would): a line is matched once, not once per label. Group lN names the label that matched.
_LINE = re.compile(
    r"^\s*(?:\d{1,2}[.)]\s*|[-–—•*·]\s*)?(?:"
    + "|".join(f"(?P<l{i}>{label})" for i, (_, label) in enumerate(_LABELS))
    + r")[ \t]*(?:\([^)\n]*\)[ \t]*)?(?:[:\-–—\t]|$)(?P<value>.*)$", re.I)
# Labels as words, for the one-typo match (labels of six letters or more only): a line
# must still look like a field, a few words of letters and then a colon, tab or dash.
_FUZZY_LABELS: tuple[tuple[str, str], ...] = tuple(
    (key, label) for key, labels in (
        ("applicant_name", ("фио заявителя", "фамилия имя отчество")),
        ("position", ("должность",)),
        ("organisation", ("медицинская организация", "наименование организации", "наименование учреждения",
                          "организация", "учреждение", "место работы")),
        ("phone", ("контактный телефон", "телефон", "телефон для связи", "номер телефона")),
        ("user_name", ("фио пользователя",)),
        ("login", ("логин пользователя", "учетная запись", "имя пользователя")),
        ("patient", ("данные пациента", "фио пациента", "фио больного", "пациент")),
        ("steps", ("последовательность действий", "порядок действий", "шаги воспроизведения")),
        ("error_text", ("описание ошибки", "описание проблемы", "текст ошибки", "текст сообщения об ошибке",
                        "ошибка")),
    ) for label in labels
    if sum(ch.isalpha() for ch in label) >= 6
)
# One edit leaves either the first two or the last two letters of a six-letter label as they
# were: index the labels by both, so that most lines are ruled out by two dictionary lookups.
_FUZZY_INDEX: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    end: tuple(e for e in _FUZZY_LABELS if end in ("^" + e[1][:2], "$" + e[1][-2:]))
    for key, label in _FUZZY_LABELS for end in ("^" + label[:2], "$" + label[-2:])
})
_WORD = re.compile(r"[^\W\d_]+")
_FUZZY_LINE = re.compile(r"^\s*(?:\d{1,2}[.)]\s*|[-–—•*·]\s*)?(?P<label>[^\W\d_]+(?:[ ,/]+[^\W\d_]+){0,4})"
                         r"[ \t]*(?:\([^)\n]*\)[ \t]*)?(?:[:\t]|\s[-–—]\s)(?P<value>.*)$")
_MULTILINE = frozenset({"steps", "error_text"})
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d \t\-()\u2011\u00a0]{1,20}\d(?!\d)")
_PHONE_CUE = re.compile(r"(?<!\w)(?:тел|телефона?|моб|доб|вн|внутр|факс)\.?\s*[:.]?\s*$", re.I)
_SNILS = re.compile(r"\d{3}-\d{3}-\d{3}\s\d{2}")
_CLOSING = re.compile(r"^\s*(?:--\s*$|_{3,}|с\s+уважением|best\s+regards|kind\s+regards|regards,?\s*$"
                      r"|отправлено\s+(?:с|из)\s|sent\s+from\s)", re.I | re.M)
_FILLER = re.compile(
    r"добр(?:ый|ое|ого)\s+(?:день|утро|вечер|времени\s+суток)|здравствуйте|приветствую|hello|"
    r"(?:см\.?|смотрите)\s+(?:во\s+)?вложени[еия]|во\s+вложении|вложение|прошу\s+рассмотреть|заявка|спасибо", re.I)


def read_form(text: str, subject: str, policy: FormPolicy) -> FormResult:
    """The form fields found in `text`, and the required ones (incl. subject and text) missing."""
    fields = _labelled_fields(text, policy.max_value_chars)
    if "phone" not in fields:
        phone = find_phone(text)
        if phone:
            fields["phone"] = phone
    present = dict(fields)
    if strip_tag_and_prefixes(subject):
        present["subject"] = subject.strip()
    if meaningful_text(text):
        present["text"] = "yes"
    return FormResult(fields, tuple(k for k in policy.required if k not in present))


def meaningful_text(text: str) -> str:
    """The words of `text` left after greetings, "see attachment", blank form lines and the signature."""
    closing = _CLOSING.search(text)
    body = text[: closing.start()] if closing else text
    # A copied blank form is no text: drop headings and labels that carry no value.
    lines = [ln for ln in body.splitlines() if (hit := _label(ln)) is None or (hit[0] and hit[1].strip())]
    body = _FILLER.sub(" ", "\n".join(lines).replace("ё", "е").replace("Ё", "Е"))
    return " ".join(w for w in body.split() if any(ch.isalnum() for ch in w))


def find_phone(text: str) -> str | None:
    """The first recognisable Russian phone number in the text, as written."""
    for match in _PHONE_CANDIDATE.finditer(text):
        written = match.group(0).strip(" -()")
        digits = re.sub(r"\D", "", written)
        if _SNILS.fullmatch(written):
            continue  # a patient's SNILS (123-456-789 01), not a phone
        full = len(digits) == 11 and (written.startswith("+7") or digits[0] in "78" and written[0] != "+")
        city = len(digits) in (6, 7) and re.search(r"\d{2,3}-\d{2}-\d{2}", written)
        cued = 3 <= len(digits) <= 11 and _PHONE_CUE.search(text[max(0, match.start() - 20):match.start()])
        if full or city or cued:
            return written
    return None


def _labelled_fields(text: str, limit: int) -> dict[str, str]:
    lines = text.replace("\r\n", "\n").split("\n")
    found: dict[str, str] = {}
    combined: dict[str, str] = {}
    for i, line in enumerate(lines):
        hit = _label(line)
        if hit is None or hit[0] is None:
            continue
        key, value = hit[0], hit[1].strip()
        if key in _MULTILINE:
            value = value + "\n" + _following(lines, i + 1, multiline=True)
        elif not value:
            value = _following(lines, i + 1, multiline=False)
        value = value.strip().strip(";,").strip()[:limit]
        if value:
            target = combined if key.endswith("+") else found
            target.setdefault(key, value)
    for key, value in _split_combined(combined).items():
        found.setdefault(key, value)
    return found


def _label(line: str) -> tuple[str | None, str] | None:
    probe = line.replace("ё", "е").replace("Ё", "Е")  # same length: spans stay valid
    match = _LINE.match(probe)
    if match:
        index = next(i for i in range(len(_LABELS)) if match.start(f"l{i}") >= 0)
        return _LABELS[index][0], line[match.start("value"):]
    return _near_label(probe, line)


def _near_label(probe: str, line: str) -> tuple[str | None, str] | None:
    """A label written with one typo («Последовательность дейсвий:»), when it is six letters or longer."""
    match = _FUZZY_LINE.match(probe)
    if match is None:
        return None
    words = " ".join(_WORD.findall(match.group("label").lower()))
    near = _FUZZY_INDEX.get("^" + words[:2], ()) + _FUZZY_INDEX.get("$" + words[-2:], ())
    for key, label in near:
        if _one_edit_apart(words, label):
            return key, line[match.start("value"):]
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """Levenshtein distance of at most one, in one pass."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), len(a))
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def _following(lines: list[str], start: int, multiline: bool) -> str:
    """The value on the lines after a label: one line, or a block up to a blank line or next label."""
    taken: list[str] = []
    for line in lines[start:start + 200]:
        if not line.strip():
            if taken or not multiline:
                break
            continue
        if _label(line) is not None or _CLOSING.match(line):
            break
        taken.append(line.strip())
        if not multiline:
            break
    return "\n".join(taken)


def _split_combined(combined: dict[str, str]) -> dict[str, str]:
    """'Данные о заявителе: ФИО, должность, МО, телефон' → the separate fields, in that order."""
    out: dict[str, str] = {}
    parts = [p.strip() for p in combined.get("applicant+", "").split(",") if p.strip() and not find_phone(p)]
    out.update({k: v for k, v in zip(("applicant_name", "position", "organisation"), parts)})
    user = [p.strip() for p in combined.get("user+", "").split(",") if p.strip()]
    if user:
        out["user_name"] = user[0]
        if len(user) > 1:
            out["login"] = user[-1]
    return out
