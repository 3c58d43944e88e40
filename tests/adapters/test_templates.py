"""The notification templates: every event renders, misses nothing, escapes HTML, can be overridden."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import escape

from maildesk.adapters.templates import (
    AGENT_EVENTS,
    DEFAULT_DIRECTORY,
    EVENTS,
    REQUESTER_EVENTS,
    TemplateRenderer,
    sample_context,
)
from maildesk.core.outgoing import Rendered, RenderError

EVIL = '<script>alert("x")</script> & <b>'
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def _keys(event: str) -> list[str]:
    return sorted(sample_context(event))


def test_events_are_the_two_audiences() -> None:
    assert EVENTS == REQUESTER_EVENTS + AGENT_EVENTS
    assert len(set(EVENTS)) == len(EVENTS) == 20


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_has_its_three_files(event: str) -> None:
    for part in ("subject", "txt", "html"):
        assert (DEFAULT_DIRECTORY / f"{event}.{part}.j2").is_file()


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_renders_russian_text_and_html(renderer: TemplateRenderer, event: str) -> None:
    rendered = renderer.render(event, sample_context(event))
    assert isinstance(rendered, Rendered)
    assert rendered.subject and "\n" not in rendered.subject and rendered.subject == rendered.subject.strip()
    assert CYRILLIC.search(rendered.subject)
    assert CYRILLIC.search(rendered.text) and CYRILLIC.search(rendered.html)
    assert rendered.text.endswith("\n") and not rendered.text.startswith("\n")
    assert "\n\n\n" not in rendered.text
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert "None" not in rendered.text and "None" not in rendered.html


@pytest.mark.parametrize("event", EVENTS)
def test_subject_carries_the_tag_when_about_a_ticket(renderer: TemplateRenderer, event: str) -> None:
    context = sample_context(event)
    rendered = renderer.render(event, context)
    if context["ticket"] is not None:
        assert rendered.subject.startswith(context["ticket"]["tag"] + " ")
    else:
        assert "[СТП #" not in rendered.subject


@pytest.mark.parametrize(("event", "key"), [(e, k) for e in EVENTS for k in _keys(e)])
def test_a_missing_key_is_an_error_not_a_blank(renderer: TemplateRenderer, event: str, key: str) -> None:
    context = sample_context(event)
    del context[key]
    with pytest.raises(RenderError):
        renderer.render(event, context)


@pytest.mark.parametrize("event", [e for e in EVENTS if sample_context(e)["ticket"] is not None])
def test_a_missing_ticket_field_is_an_error(renderer: TemplateRenderer, event: str) -> None:
    context = sample_context(event)
    del context["ticket"]["tag"]
    with pytest.raises(RenderError):
        renderer.render(event, context)


def _poisoned(event: str) -> dict:
    """Every value that can come from mail or from people replaced by markup."""
    context = sample_context(event)
    if context["ticket"] is not None:
        context["ticket"].update(subject=EVIL, requester_name=EVIL, organisation=EVIL, owner_name=EVIL)
    for key in ("text", "agent_name", "author", "original_subject", "held_subject", "form", "sender"):
        if key in context:
            context[key] = EVIL
    if "missing" in context:
        context["missing"] = [EVIL]
    for item in context.get("refused", []):
        item["name"] = EVIL
    for item in context.get("errors", []):
        item.update(line=EVIL, error=EVIL)
    for item in context.get("tickets", []) + context.get("organisation_tickets", []):
        item["subject"] = EVIL
    return context


@pytest.mark.parametrize("event", EVENTS)
def test_html_part_escapes_and_text_part_keeps_values(renderer: TemplateRenderer, event: str) -> None:
    rendered = renderer.render(event, _poisoned(event))
    assert "<script" not in rendered.html and EVIL not in rendered.html
    assert str(escape(EVIL)) in rendered.html
    assert EVIL in rendered.text  # plain text shows it as typed: harmless there
    assert "&lt;" not in rendered.text


def test_subject_is_one_line_even_when_the_ticket_subject_is_not(renderer: TemplateRenderer) -> None:
    context = sample_context("ticket_created")
    context["ticket"]["subject"] = "Не работает\r\n  МИС\tсовсем"
    assert renderer.render("ticket_created", context).subject == (
        "[СТП #1234] Заявка зарегистрирована: Не работает МИС совсем"
    )


def test_agent_text_keeps_its_line_breaks_in_html(renderer: TemplateRenderer) -> None:
    html = renderer.render("agent_reply", sample_context("agent_reply")).html
    assert "заново.<br>\nЕсли" in html


def test_override_directory_wins_for_one_file(tmp_path: Path) -> None:
    (tmp_path / "ticket_created.subject.j2").write_text("Принято: {{ ticket.tag }}", encoding="utf-8")
    rendered = TemplateRenderer(override_dir=tmp_path).render("ticket_created", sample_context("ticket_created"))
    shipped = TemplateRenderer().render("ticket_created", sample_context("ticket_created"))
    assert rendered.subject == "Принято: [СТП #1234]"
    assert rendered.text == shipped.text and rendered.html == shipped.html


def test_override_of_a_layout_reaches_every_body(tmp_path: Path) -> None:
    (tmp_path / "_layout.txt.j2").write_text("ШАПКА\n{% block body %}{% endblock %}\n", encoding="utf-8")
    text = TemplateRenderer(override_dir=tmp_path).render("closed", sample_context("closed")).text
    assert text.startswith("ШАПКА\n") and "закрыта" in text


def test_override_html_is_escaped_whatever_it_does(tmp_path: Path) -> None:
    (tmp_path / "agent_reply.html.j2").write_text("<p>{{ text }}</p>", encoding="utf-8")
    context = sample_context("agent_reply")
    context["text"] = EVIL
    html = TemplateRenderer(override_dir=tmp_path).render("agent_reply", context).html
    assert html == "<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;</p>"


def test_reload_picks_up_a_new_override(tmp_path: Path) -> None:
    renderer = TemplateRenderer(override_dir=tmp_path)
    before = renderer.render("reopened", sample_context("reopened")).subject
    (tmp_path / "reopened.subject.j2").write_text("{{ ticket.tag }} Снова в работе", encoding="utf-8")
    renderer.reload()
    after = renderer.render("reopened", sample_context("reopened")).subject
    assert before.startswith("[СТП #1234] Работы по заявке возобновлены")
    assert after == "[СТП #1234] Снова в работе"


def test_explicit_directory_and_missing_templates(tmp_path: Path) -> None:
    renderer = TemplateRenderer(directory=tmp_path)
    with pytest.raises(RenderError, match="not found"):
        renderer.render("ticket_created", sample_context("ticket_created"))
    assert len(renderer.check()) == len(EVENTS)


def test_check_is_clean_for_the_shipped_templates(tmp_path: Path) -> None:
    assert TemplateRenderer().check() == []
    assert TemplateRenderer(override_dir=tmp_path / "absent").check() == [
        f"template override directory {tmp_path / 'absent'} does not exist"
    ]


def test_unknown_event() -> None:
    with pytest.raises(RenderError):
        TemplateRenderer().render("nonexistent", {})
    with pytest.raises(ValueError):
        sample_context("../etc/passwd")


def test_ticket_created_says_what_happens_next(renderer: TemplateRenderer) -> None:
    text = renderer.render("ticket_created", sample_context("ticket_created")).text
    assert "№ 1234" in text and "8 рабочих часов" in text and "13.03.2025 08:41" in text
    assert "не меняя тему" in text and "[СТП #1234]" in text


def test_info_requested_lists_missing_fields_and_the_form(renderer: TemplateRenderer) -> None:
    text = renderer.render("info_requested", sample_context("info_requested")).text
    assert "– Контактный телефон" in text and "– Данные пациента" in text
    assert "Обратная связь" in text and "Последовательность выполняемых действий:" in text


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("too_many_images", "ZIP, 7z или RAR"),
        ("too_large", "ссылку"),
        ("executable", "Исполняемые файлы"),
        ("type_not_allowed", "JPG, GIF или PNG"),
        ("document_only", "Опишите проблему в тексте письма"),
    ],
)
def test_attachment_refused_gives_the_advice_for_each_reason(
    renderer: TemplateRenderer, reason: str, advice: str
) -> None:
    context = sample_context("attachment_refused")
    context["ticket"] = None
    context["refused"] = [{"name": "файл.bin", "size": 3 * 1024 * 1024 // 2, "reason": reason, "reason_label": "причина"}]
    rendered = renderer.render("attachment_refused", context)
    assert advice in rendered.text and advice in rendered.html
    assert "файл.bin (1,5 МБ): причина" in rendered.text
    assert rendered.subject == "Вложения не приняты"


def test_resolved_asks_to_confirm_and_names_the_deadline(renderer: TemplateRenderer) -> None:
    text = renderer.render("resolved", sample_context("resolved")).text
    assert "«подтверждаю»" in text and "10 рабочих дней" in text and "возобновлены" in text


def test_reminder_and_closed_speak_of_no_response(renderer: TemplateRenderer) -> None:
    assert "26.03.2025" in renderer.render("reminder", sample_context("reminder")).text
    closed = renderer.render("closed", sample_context("closed"))
    for part in (closed.text, closed.html):
        assert "закрыта: мы не получили от Вас ответа в установленный срок." in part
        assert "Закрыта из-за" not in part and "Причина закрытия" not in part, "the status word is not repeated"


@pytest.mark.parametrize(("reason", "duplicate_of", "wording"), [
    ("resolved", None, "закрыта: работы по ней выполнены."),
    ("infeasible", None, "закрыта: выполнить её, к сожалению, невозможно."),
    ("cancelled", None, "закрыта как отменённая."),
    ("duplicate", 1200, "закрыта как дубликат заявки № 1200: работа по Вашему обращению продолжается в ней."),
    ("duplicate", None, "закрыта как дубликат другой заявки"),
    ("", None, "«Не открывается расписание врача в МИС» закрыта.\n"),
])
def test_closed_names_its_reason_in_a_sentence(renderer: TemplateRenderer, reason: str, duplicate_of: int | None,
                                              wording: str) -> None:
    context = sample_context("closed")
    context.update(close_reason=reason, duplicate_of=duplicate_of)
    context["ticket"]["close_reason_label"] = ""
    rendered = renderer.render("closed", context)
    assert wording in rendered.text
    assert wording.strip() in re.sub(r"<[^>]+>", "", rendered.html).replace("&nbsp;", " ")


def test_closed_falls_back_to_the_label_for_an_unknown_reason(renderer: TemplateRenderer) -> None:
    context = sample_context("closed")
    context.update(close_reason="spam")
    context["ticket"]["close_reason_label"] = "Спам"
    assert "закрыта. Причина закрытия: Спам." in renderer.render("closed", context).text


def test_reopened_says_work_resumed(renderer: TemplateRenderer) -> None:
    assert "возобновлены" in renderer.render("reopened", sample_context("reopened")).text


def test_closed_reply_for_both_policies(renderer: TemplateRenderer) -> None:
    new = renderer.render("closed_reply", sample_context("closed_reply"))
    assert new.subject.startswith("[СТП #1301]") and "новая заявка № 1301" in new.text
    context = sample_context("closed_reply")
    context.update(policy="refuse", new_number=None, ticket=sample_context("closed")["ticket"])
    refuse = renderer.render("closed_reply", context)
    assert refuse.subject.startswith("[СТП #1234]")
    assert "направьте новое обращение" in refuse.text and "№ 1234" in refuse.text
    assert "1301" not in refuse.text


def test_agent_new_ticket_lists_the_commands(renderer: TemplateRenderer) -> None:
    rendered = renderer.render("agent_new_ticket", sample_context("agent_new_ticket"))
    for command in ("/status", "/assign me", "/priority", "/impact", "/line 2", "/note", "/feedback", "/close",
                    "/merge N", "/закрыть", "/объединить N", "/назначить себе", "/статус решена", "/text"):
        assert command in rendered.text and command in rendered.html


def test_agent_new_ticket_lists_exactly_the_real_command_set(renderer: TemplateRenderer) -> None:
    """Every command, reason, status and impact the parser knows, with the Russian names; nothing it does not."""
    from maildesk.core import commands, lifecycle

    rendered = renderer.render("agent_new_ticket", sample_context("agent_new_ticket"))
    for part in (rendered.text, rendered.html):
        written = set(re.findall(r"(?:^|[\s(>])/([a-zа-яё]+)", part, re.MULTILINE))
        assert written <= set(commands.ALIASES), f"unknown commands shown: {written - set(commands.ALIASES)}"
        assert set(commands.ALIASES.values()) <= written, "every command is shown"
        for code, label in lifecycle.STATUS_LABELS.items():
            assert f"{code} «{label}»" in part
            assert commands.STATUS_WORDS[label.lower()] == code
        for code, label in lifecycle.IMPACT_LABELS.items():
            assert f"{code} «{label}»" in part
        reasons = dict(re.findall(r"(resolved|duplicate|infeasible|cancelled|no_response)(?: N)? \(([а-я ]+?)(?:;| N|\))",
                                  part))
        assert set(reasons) == set(lifecycle.CLOSE_REASON_LABELS)
        assert all(commands.REASON_WORDS[word] == code for code, word in reasons.items()), reasons
    assert "Статус: Новая" in rendered.text


def test_agent_new_ticket_says_when_the_impact_is_unknown(renderer: TemplateRenderer) -> None:
    context = sample_context("agent_new_ticket")
    context["ticket"].update(impact="", impact_label="")
    assert "Влияние: не указано;" in renderer.render("agent_new_ticket", context).text


def test_command_error_names_each_line(renderer: TemplateRenderer) -> None:
    text = renderer.render("agent_command_error", sample_context("agent_command_error")).text
    assert "/status done" in text and "неизвестный статус" in text and "Ничего из письма не применено" in text


def test_footer_carries_the_desk_contacts(renderer: TemplateRenderer) -> None:
    rendered = renderer.render("status_changed", sample_context("status_changed"))
    for value in ("help@sevmiac.ru", "8 (8692) 41-72-22", "пн–пт 08:00–17:00", "https://help.sevmiac.ru"):
        assert value in rendered.text and value in rendered.html
    assert "\n-- \n" in rendered.text


def test_empty_phone_and_site_leave_no_blank_labels(renderer: TemplateRenderer) -> None:
    context = sample_context("reopened")
    context["desk"].update(phone="", site="")
    rendered = renderer.render("reopened", context)
    assert "Телефон" not in rendered.text and "Портал" not in rendered.text


@pytest.mark.parametrize(
    ("number", "word"),
    [(1, "рабочего дня"), (2, "рабочих дней"), (5, "рабочих дней"), (11, "рабочих дней"), (21, "рабочего дня")],
)
def test_days_agree_with_the_number(renderer: TemplateRenderer, number: int, word: str) -> None:
    context = sample_context("resolved")
    context["days"] = number
    assert f"в течение {number} {word}," in renderer.render("resolved", context).text


@pytest.mark.parametrize(("count", "words"), [(1, "автоматическое письмо"), (3, "автоматических письма"),
                                              (12, "автоматических писем"), (20, "автоматических писем")])
def test_letters_agree_with_the_number(renderer: TemplateRenderer, count: int, words: str) -> None:
    context = sample_context("outbox_held")
    context["count"] = count
    assert f"отправлено {count} {words} " in renderer.render("outbox_held", context).text


def test_held_mail_sample_matches_the_default_cap(renderer: TemplateRenderer) -> None:
    from maildesk.adapters.outbox import CAP_PERIOD, OutboxWorker
    from maildesk.config import OutgoingSection

    context = sample_context("outbox_held")
    assert context["count"] == OutgoingSection().auto_cap_per_day == OutboxWorker.cap_per_day == 40
    assert CAP_PERIOD.days == 1 and context["period"] == "за сутки"
    text = renderer.render("outbox_held", context).text
    assert "отправлено 40 автоматических писем за сутки" in text
    assert "maildesk outbox retry НОМЕР --force" in text


def test_sample_context_is_a_fresh_copy() -> None:
    first = sample_context("attachment_refused")
    first["refused"][0]["name"] = "изменено"
    first["desk"]["name"] = "изменено"
    second = sample_context("attachment_refused")
    assert second["refused"][0]["name"] != "изменено" and second["desk"]["name"] != "изменено"


@pytest.mark.parametrize("event", [e for e in EVENTS if sample_context(e)["ticket"] is None])
def test_an_empty_ticket_mapping_counts_as_no_ticket(renderer: TemplateRenderer, event: str) -> None:
    context = sample_context(event)
    context["ticket"] = {}
    assert renderer.render(event, context) == renderer.render(event, sample_context(event))


# -- `maildesk templates preview` --------------------------------------------------------------
def test_preview_shows_the_configured_desk_and_tag(tmp_path: Path) -> None:
    from tests.test_cli import maildesk, write_config

    config = write_config(tmp_path, maildesk={"ticket_tag": "ТП"})
    out = maildesk(config, "templates", "preview", "status_changed", "--html").stdout.decode()
    assert out.startswith("Subject: [ТП #1234] ")
    assert "СТП ГБУЗС «МИАЦ»" in out and "help@miac.sev.gov.ru" in out and "+7 (8692) 00-00-00" in out
    assert "help@sevmiac.ru" not in out and "Служба технической поддержки ГБУЗС" not in out


def test_preview_for_a_real_ticket(tmp_path: Path) -> None:
    from tests.mailmaker import make_mail
    from tests.test_cli import maildesk, write_config

    config = write_config(tmp_path)
    maildesk(config, "db", "upgrade")
    maildesk(config, "ingest", stdin=make_mail(subject="Не печатает принтер в кабинете 214",
                                               body="Принтер HP не печатает.\n\nТелефон: 55-12-34\n"))
    out = maildesk(config, "templates", "preview", "ticket_created", "--ticket", "1", "--html").stdout.decode()
    head, _, body = out.partition("\n\n")
    assert "Subject: [СТП #1] Заявка зарегистрирована: Не печатает принтер в кабинете 214" in head
    assert "From: СТП ГБУЗС «МИАЦ» <help@miac.sev.gov.ru>" in head and "To: ivanova@gb1.sev.gov.ru" in head
    assert "Reply-To: help@miac.sev.gov.ru" in head and "In-Reply-To: <" in head
    assert "Номер заявки: № 1." in body and "Иванова Мария Петровна" in body and "№&nbsp;1" in body
    agents = maildesk(config, "templates", "preview", "agent_new_ticket", "--ticket", "1").stdout.decode()
    assert "To: petrov@miac.sev.gov.ru, sidorova@miac.sev.gov.ru" in agents and "Принтер HP не печатает." in agents
    missing = maildesk(config, "templates", "preview", "closed", "--ticket", "7", check=False)
    assert missing.returncode == 1 and b"ticket #7 not found" in missing.stderr
    listing = maildesk(config, "templates", "preview", "my_tickets", "--ticket", "1", check=False)
    assert listing.returncode == 1 and b"not about one ticket" in listing.stderr
