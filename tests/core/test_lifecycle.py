"""Lifecycle rules: a requester's confirmation of a resolved ticket, and which impact change raises."""

from __future__ import annotations

import pytest

from maildesk.core.lifecycle import is_confirmation, own_text, raises_impact

# What we sent (templates/resolved.txt.j2), as a requester's client quotes it.
QUOTED_NOTICE = (
    "> Работы по заявке № 7 «Не открывается карта пациента» завершены, заявке присвоен статус «Решена».\n"
    ">\n"
    "> Пожалуйста, проверьте результат и ответьте на это письмо:\n"
    ">   – если проблема решена, напишите «подтверждаю» — заявка будет закрыта;\n"
    ">   – если проблема осталась, опишите, что по-прежнему работает не так, — работы по заявке будут возобновлены.\n"
)
ATTRIBUTION = "23.11.2026 10:00, СТП ГБУЗС «МИАЦ» <help@miac.sev.gov.ru> пишет:\n"

CONFIRMATIONS = [
    "Подтверждаю",
    "подтверждаю!",
    "Подтверждаю, ошибок нет. Спасибо!",
    "Добрый день! Подтверждаю.",
    "Здравствуйте, Пётр Иванович! Подтверждаю, спасибо.",
    "Спасибо, всё работает!",
    "Проверено, всё работает.",
    "Ошибок нет.",
    "Ошибка устранена, спасибо за помощь.",
    "Проблема решена.",
    "Можно закрывать.",
    "Заявку можно закрыть, спасибо.",
    "Да, работает. Спасибо!",
    "Всё работает, спасибо большое!",
    "Помогло, спасибо.",
    "Проверила, ошибок больше нет.",
    "Доброе утро. Всё получилось, спасибо!",
    "Подтверждаю\n\nС уважением,\nИванова Мария Петровна\nГБУЗС «Городская больница № 1», тел. 55-12-34",
    "Подтверждаю.\n\n-- \nИванова М. П.\nОтправлено с iPhone",
    # top-posted over the quoted notice, which itself asks for «подтверждаю» and says «по-прежнему»
    "Подтверждаю.\n\n" + ATTRIBUTION + QUOTED_NOTICE,
    # bottom-posted under it
    QUOTED_NOTICE + "\nПодтверждаю, спасибо.\n",
    ATTRIBUTION + QUOTED_NOTICE + "\nВсё работает.\n",
]

NOT_CONFIRMATIONS = [
    "Пока не проверено",
    "Проверено, но ошибка та же",
    "Проверено: карта по-прежнему не открывается",
    "Не подтверждаю, ошибка осталась.",
    "Ошибка осталась, карта не открывается.",
    "Проверено. Ошибка снова появилась.",
    "Подтверждаю, что ошибка опять возникает.",
    "Проверили — так же не работает.",
    "Также не открывается.",
    "Спасибо, но не работает.",
    "Спасибо!",
    "Хорошо, проверю завтра.",
    "Завтра проверю и подтвержу.",
    "Как проверить? Подтверждаю, если подскажете.",
    "Проверено, работает только у одного пользователя.",
    "Работает через раз.",
    "Подтверждаю. А когда будет обновление?",
    "Проверено частично, отчёт пока не формируется.",
    "Всё ещё не работает.",
    "Проблема решена не полностью.",
    "Ошибок нет, но отчёт печатается пустым.",
    "Проверено, ошибка та же самая.",
    "Опять та же ошибка.",
    "Подтверждаю получение письма.",
    "Проверено, ошибок стало меньше.",
    "Здравствуйте, не работает!",
    "Работает, но иногда зависает.",
    "Подтверждаю, " + "МИС выдаёт отчёт за прошлый месяц вместо текущего, прошу проверить настройки. " * 3,
    # the only «подтверждаю» is in our own quoted notice
    QUOTED_NOTICE + "\nПока не проверено.\n",
    QUOTED_NOTICE + "\nКарта так и не открывается.\n",
    ATTRIBUTION + QUOTED_NOTICE + "\nОшибка та же.\n",
    "Ошибка та же.\n\n" + ATTRIBUTION + QUOTED_NOTICE,
    QUOTED_NOTICE,
    "",
]


@pytest.mark.parametrize("text", CONFIRMATIONS)
def test_a_short_reply_opening_with_a_confirmation_confirms(text: str) -> None:
    assert is_confirmation(text)


@pytest.mark.parametrize("text", NOT_CONFIRMATIONS)
def test_any_doubt_or_a_quoted_confirmation_is_no_confirmation(text: str) -> None:
    assert not is_confirmation(text)


def test_own_text_drops_quotes_and_the_signature() -> None:
    text = QUOTED_NOTICE + "\nПодтверждаю.\n\nС уважением,\nИванова"
    assert own_text(text) == "подтверждаю."


@pytest.mark.parametrize(("old", "new", "raises"), [
    ("minor", "critical", True),
    ("critical", "block", True),
    ("text", "tweak", True),
    ("critical", "minor", False),
    ("minor", "minor", False),
    ("major", "feature", False),
    (None, "critical", False),  # nothing set yet: the priority decides (see test_commands)
    ("major", None, False),
])
def test_which_impact_change_raises(old: str | None, new: str | None, raises: bool) -> None:
    assert raises_impact(old, new) is raises
