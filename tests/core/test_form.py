from __future__ import annotations

import re

import pytest

from maildesk.core.form import FIELD_LABELS, FORM_TEMPLATE, FormPolicy, find_phone, meaningful_text, read_form

POLICY = FormPolicy()
ALL_FIELDS = ("applicant_name", "position", "organisation", "phone", "user_name", "login", "patient", "steps",
              "error_text")


def fields(text: str) -> dict[str, str]:
    return dict(read_form(text, "Тема", POLICY).fields)


LABELS = [
    # (line(s) as people write them, key, value)
    ("ФИО: Иванова Мария Петровна", "applicant_name", "Иванова Мария Петровна"),
    ("Ф.И.О.: Иванова М.П.", "applicant_name", "Иванова М.П."),
    ("Ф. И. О. - Иванова М.П.", "applicant_name", "Иванова М.П."),
    ("Ф.И.О Иванова", None, None),
    ("фио\tИванова", "applicant_name", "Иванова"),
    ("1. ФИО: Иванова", "applicant_name", "Иванова"),
    ("1) ФИО: Иванова", "applicant_name", "Иванова"),
    ("- ФИО: Иванова", "applicant_name", "Иванова"),
    ("• ФИО: Иванова", "applicant_name", "Иванова"),
    ("ФИО:\nИванова Мария", "applicant_name", "Иванова Мария"),
    ("ФИО заявителя: Иванова", "applicant_name", "Иванова"),
    ("ФИО (полностью): Иванова", "applicant_name", "Иванова"),
    ("   ФИО :   Иванова ;", "applicant_name", "Иванова"),
    ("Должность: медсестра", "position", "медсестра"),
    ("ДОЛЖНОСТЬ — врач-терапевт", "position", "врач-терапевт"),
    ("МО: ГБУЗС «ГБ №1»", "organisation", "ГБУЗС «ГБ №1»"),
    ("Медицинская организация: ГБУЗС «ГБ №1»", "organisation", "ГБУЗС «ГБ №1»"),
    ("Наименование МО: ГБ №1", "organisation", "ГБ №1"),
    ("Организация: ГБ №1", "organisation", "ГБ №1"),
    ("Учреждение: ГБ №1", "organisation", "ГБ №1"),
    ("ЛПУ: ГБ №1", "organisation", "ГБ №1"),
    ("Телефон: 8 (8692) 41-72-22", "phone", "8 (8692) 41-72-22"),
    ("Тел.: 12345", "phone", "12345"),
    ("тел: 12345", "phone", "12345"),
    ("Контактный телефон: +7 978 123-45-67", "phone", "+7 978 123-45-67"),
    ("Контактный номер телефона: 41-72-22", "phone", "41-72-22"),
    ("Номер телефона - 41-72-22", "phone", "41-72-22"),
    ("Моб.: 89781234567", "phone", "89781234567"),
    ("ФИО пользователя: Петров П.П.", "user_name", "Петров П.П."),
    ("Ф.И.О. пользователя: Петров П.П.", "user_name", "Петров П.П."),
    ("Логин: petrov_pp", "login", "petrov_pp"),
    ("Логин пользователя: petrov_pp", "login", "petrov_pp"),
    ("Учетная запись: petrov_pp", "login", "petrov_pp"),
    ("Учётная запись: petrov_pp", "login", "petrov_pp"),
    ("УЧЁТНАЯ ЗАПИСЬ: petrov_pp", "login", "petrov_pp"),
    ("Login: petrov_pp", "login", "petrov_pp"),
    ("Данные пациента: Сидоров С.С., карта 12345", "patient", "Сидоров С.С., карта 12345"),
    ("Данные о пациенте: Сидоров С.С.", "patient", "Сидоров С.С."),
    ("Пациент: Сидоров С.С.", "patient", "Сидоров С.С."),
    ("ФИО пациента: Сидоров С.С.", "patient", "Сидоров С.С."),
    ("Последовательность действий: Регистратура → Расписание", "steps", "Регистратура → Расписание"),
    ("Последовательность выполняемых действий:\n1. Открыть\n2. Нажать", "steps", "1. Открыть\n2. Нажать"),
    ("Шаги: открыть карту", "steps", "открыть карту"),
    ("Порядок действий: открыть карту", "steps", "открыть карту"),
    ("Описание ошибки: Шаблона не существует", "error_text", "Шаблона не существует"),
    ("Текст ошибки: Object reference not set", "error_text", "Object reference not set"),
    ("Ошибка: Object reference not set", "error_text", "Object reference not set"),
    ("Описание проблемы: не печатается талон", "error_text", "не печатается талон"),
    # sentences that start like a label are not fields
    ("Пациент не может записаться к врачу", None, None),
    ("Ошибка возникает при входе", None, None),
    ("Должность в карте не отображается", None, None),
    ("Может ли МО менять расписание?", None, None),
    ("Телеграм: @ivanova", None, None),
]


@pytest.mark.parametrize("text, key, value", LABELS)
def test_labels(text: str, key: str | None, value: str | None) -> None:
    assert fields(text) == ({key: value} if key else {})


def test_crlf_text() -> None:
    assert fields("ФИО: Иванова\r\nДолжность: врач\r\n") == {"applicant_name": "Иванова", "position": "врач"}


def test_first_value_wins() -> None:
    assert fields("ФИО: Иванова\nФИО: Петрова")["applicant_name"] == "Иванова"


def test_value_on_the_next_line_only_when_it_is_not_a_label() -> None:
    assert fields("ФИО:\nДолжность: врач") == {"position": "врач"}


def test_single_line_field_does_not_take_a_paragraph_after_a_blank_line() -> None:
    assert "position" not in fields("Должность:\n\nКогда я открываю карту, появляется ошибка.")


def test_multiline_value_ends_at_blank_line_or_next_label() -> None:
    text = "Последовательность действий:\n\n1. Открыть\n2. Нажать\n\nПрочее\nОписание ошибки: Текст\nещё строка"
    found = fields(text)
    assert found["steps"] == "1. Открыть\n2. Нажать"
    assert found["error_text"] == "Текст\nещё строка"


def test_multiline_value_ends_at_signature() -> None:
    assert fields("Текст ошибки:\nОшибка 500\nС уважением,\nИванова")["error_text"] == "Ошибка 500"


def test_combined_applicant_field() -> None:
    found = fields("Данные о заявителе: Иванова М.П., медсестра, ГБУЗС «ГБ №1», 8 (8692) 41-72-22")
    assert found == {
        "applicant_name": "Иванова М.П.", "position": "медсестра", "organisation": "ГБУЗС «ГБ №1»",
        "phone": "8 (8692) 41-72-22",
    }


def test_combined_user_field() -> None:
    assert fields("ФИО пользователя, логин: Петров П.П., petrov_pp") == {"user_name": "Петров П.П.",
                                                                        "login": "petrov_pp"}


def test_explicit_labels_win_over_combined() -> None:
    found = fields("Данные о заявителе: Иванова, врач\nДолжность: медсестра")
    assert found["position"] == "медсестра" and found["applicant_name"] == "Иванова"


def test_long_values_are_capped() -> None:
    found = read_form("Ошибка: " + "x" * 5000, "Тема", FormPolicy(max_value_chars=100)).fields
    assert len(found["error_text"]) == 100


PHONES = [
    ("Звоните: +7 (978) 123-45-67", "+7 (978) 123-45-67"),
    ("8 (8692) 41-72-22", "8 (8692) 41-72-22"),
    ("+7 8692 417222", "+7 8692 417222"),
    ("моб 89781234567", "89781234567"),
    ("тел. 41-72-22", "41-72-22"),
    ("41-72-22", "41-72-22"),
    ("вн. 12345", "12345"),
    ("доб. 123", "123"),
    ("С уважением, Иванова\nинженер\n+7-978-123-45-67", "+7-978-123-45-67"),
    ("позвоните на номер телефона 41722", "41722"),
    ("основной 12345", None),
    ("+8 (8692) 41-72-22", None),
    ("карта 1234567", None),
    ("СНИЛС 812-345-678 90", None),
    ("ошибка 500", None),
    ("12.05.2024 в 10:00", None),
    ("ИНН 9201234567", None),
    ("+1 555 123 4567", None),
    ("полис 8000000000000000", None),
    ("заявка №12345", None),
]


@pytest.mark.parametrize("text, phone", PHONES)
def test_find_phone(text: str, phone: str | None) -> None:
    assert find_phone(text) == phone


def test_unlabelled_phone_counts_as_given() -> None:
    result = read_form("Не открывается карта.\n\nС уважением, Иванова\n+7 (978) 123-45-67", "Ошибка", POLICY)
    assert result.fields == {"phone": "+7 (978) 123-45-67"} and result.missing == ()


MISSING = [
    # (text, subject, required, missing)
    ("Не открывается карта пациента.", "Ошибка", ("subject", "text", "phone"), ("phone",)),
    ("Не открывается карта пациента.\nТел.: 41-72-22", "", ("subject", "text", "phone"), ("subject",)),
    ("Не открывается карта.\nТел.: 41-72-22", "Re: ", ("subject", "text", "phone"), ("subject",)),
    ("Не открывается карта.\nТел.: 41-72-22", "Fwd: [СТП #5]", ("subject", "text", "phone"), ("subject",)),
    ("", "Ошибка", ("subject", "text", "phone"), ("text", "phone")),
    ("Добрый день!\nСм. вложение.\nС уважением, Иванова", "Ошибка", ("subject", "text"), ("text",)),
    (FORM_TEMPLATE, "Ошибка", ("subject", "text", "phone"), ("text", "phone")),
    ("Не открывается карта.", "Ошибка", (), ()),
    ("Не открывается карта.\nФИО: Иванова", "Ошибка", ("applicant_name", "organisation", "login"),
     ("organisation", "login")),
]


@pytest.mark.parametrize("text, subject, required, missing", MISSING)
def test_missing(text: str, subject: str, required: tuple[str, ...], missing: tuple[str, ...]) -> None:
    assert read_form(text, subject, FormPolicy(required=required)).missing == missing


MEANINGLESS = [
    "",
    "   \n\t",
    "Добрый день!",
    "Здравствуйте.\nСм. вложение",
    "Добрый день! Заявка во вложении. Спасибо!",
    "Прошу рассмотреть.\n\nС уважением,\nИванова М.П.\nмедсестра",
    "Отправлено с iPhone",
    "--\nИванова",
    FORM_TEMPLATE,
]


@pytest.mark.parametrize("text", MEANINGLESS)
def test_meaningless_text(text: str) -> None:
    assert meaningful_text(text) == ""


def test_meaningful_text_keeps_the_description() -> None:
    kept = meaningful_text("Добрый день!\nНе формируется реестр за май.\nС уважением, Иванова")
    assert kept == "Не формируется реестр за май."


def test_filled_template_reads_back() -> None:
    values = {
        "ФИО заявителя:": "Иванова Мария Петровна",
        "Должность:": "медсестра",
        "Медицинская организация (МО):": "ГБУЗС «Городская больница №1»",
        "Контактный телефон:": "+7 (8692) 55-12-34",
        "ФИО пользователя:": "Петров П.П.",
        "Логин пользователя:": "petrov_pp",
        "Данные пациента (фамилия, инициалы, № карты):": "Сидоров С.С., карта 12345",
        "Последовательность действий:": "Регистратура → Расписание → Записать",
        "Описание ошибки (текст по кнопке «Подробнее»):": "Шаблона посещения не существует",
    }
    text = FORM_TEMPLATE
    for label, value in values.items():
        text = text.replace(label + "\n", f"{label} {value}\n", 1)
    result = read_form(text, "Не записывается пациент", POLICY)
    assert tuple(result.fields) == ALL_FIELDS
    assert list(result.fields.values()) == list(values.values())
    assert result.missing == ()


def test_template_and_labels_cover_every_field() -> None:
    assert set(FIELD_LABELS) == set(ALL_FIELDS) | {"subject", "text"}
    assert set(POLICY.required) <= set(FIELD_LABELS)
    assert all(re.search(r"[А-Яа-я]", label) for label in FIELD_LABELS.values())
    assert "10 МБ" in FORM_TEMPLATE


VARIANTS = [
    # labels people write besides the regulation's own (audit finding 8)
    ("Фамилия, имя, отчество: Иванова Мария", "applicant_name", "Иванова Мария"),
    ("Фамилия Имя Отчество: Иванова", "applicant_name", "Иванова"),
    ("Телефон для связи: 2-15", "phone", "2-15"),
    ("Должнось: медсестра", "position", "медсестра"),
    ("Дожность: врач", "position", "врач"),
    ("Последовательность дейсвий: открыть карту", "steps", "открыть карту"),
    ("Наименование организации/учреждения: ГБ №1", "organisation", "ГБ №1"),
    ("Наименование организации: ГБ №1", "organisation", "ГБ №1"),
    ("Место работы: ГБ №1", "organisation", "ГБ №1"),
    ("Логин в МИС: petrov_pp", "login", "petrov_pp"),
    ("Имя пользователя: petrov_pp", "login", "petrov_pp"),
    ("ФИО больного: Сидоров С.С.", "patient", "Сидоров С.С."),
    ("Текст сообщения об ошибке: Object reference not set", "error_text", "Object reference not set"),
    # one letter wrong, missing or extra in a label of six letters or more
    ("Описание ошибкы: Шаблона не существует", "error_text", "Шаблона не существует"),
    ("Последоватльность действий: открыть", "steps", "открыть"),
    ("Контактный телефн: 41-72-22", "phone", "41-72-22"),
    ("Учетная запис: petrov_pp", "login", "petrov_pp"),
    ("Должжность - врач", "position", "врач"),
    # ordinary lines stay text: short labels are exact, typos need a colon, tab or spaced dash
    ("Логн: petrov", None, None),
    ("Должнось врача не указана в карте", None, None),
    ("Решение вопроса: перезагрузка не помогла", None, None),
    ("Отделение: терапия", None, None),
    ("Организатор: Петров", None, None),
    ("Пациентка: Иванова", None, None),
    ("Сообщение: не найдено", None, None),
]


@pytest.mark.parametrize("text, key, value", VARIANTS)
def test_label_variants_and_typos(text: str, key: str | None, value: str | None) -> None:
    assert fields(text) == ({key: value} if key else {})


def test_a_filled_form_with_typos_is_complete() -> None:
    text = ("Фамилия, имя, отчество: Иванова Мария Петровна\nДожность: медсестра\nМесто работы: ГБ №1\n"
            "Телефон для связи: 2-15\nЛогин в МИС: ivanova\nПоследовательность дейсвий:\n1. Открыть карту\n\n"
            "Текст сообщения об ошибке: Ошибка доступа")
    result = read_form(text, "Ошибка", FormPolicy(required=ALL_FIELDS[:4] + ("login", "steps", "error_text")))
    assert result.missing == ()
    assert result.fields["steps"] == "1. Открыть карту"
