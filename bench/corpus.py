"""A deterministic corpus of realistic Russian help-desk mail, built as raw bytes one index at a time.

Message `i` depends only on (seed, i), so any slice can be produced anywhere (in the
bench process, in an SMTP client thread, in a subprocess) and is the same every run.
The mix: new requests from hospital staff, replies into earlier requests (subject tag
`[СТП #N]`, In-Reply-To, References, quoted history), a few auto-replies and outsiders.
Subjects and names come in utf-8, windows-1251 and koi8-r, as RFC 2047 B or Q words
(names split mid-word across words) and now and then as raw 8-bit; bodies are plain or
plain + HTML, in 8bit, quoted-printable or base64; a fifth carry 1–3 images (random
bytes behind a real JPEG or PNG header). Every line ends in CRLF, as on the wire.
"""

from __future__ import annotations

import base64
import quopri
import random
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

DESK = "help@miac.sev.gov.ru"
TAG = "СТП"
CHARSETS = ("utf-8", "windows-1251", "koi8-r")
START = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)
KEEP = 1200  # messages kept in memory once built (about 120 MB)

SURNAMES = ("Иванова", "Петренко", "Сидорова", "Кузнецов", "Смирнова", "Попов", "Васильева", "Соколов",
            "Михайлова", "Новиков", "Фёдорова", "Морозов", "Волкова", "Алексеев", "Лебедева", "Семёнов",
            "Егорова", "Павлов", "Козлова", "Степанов", "Николаева", "Орлов", "Андреева", "Макаров")
FIRST = ("Мария", "Ольга", "Татьяна", "Елена", "Наталья", "Светлана", "Ирина", "Анна", "Юлия", "Людмила",
         "Сергей", "Андрей", "Алексей", "Дмитрий", "Игорь", "Владимир", "Николай", "Евгений")
PATRONYMIC = ("Петровна", "Ивановна", "Сергеевна", "Александровна", "Викторовна", "Николаевна",
              "Андреевич", "Владимирович", "Юрьевич", "Олегович", "Михайлович")
ORGS = (("gb1", "ГБУЗС «Городская больница № 1 им. Н. И. Пирогова»"),
        ("gb4", "ГБУЗС «Городская больница № 4»"), ("gb5", "ГБУЗС «Городская больница № 5 — ЦОЗМиР»"),
        ("gb9", "ГБУЗС «Городская больница № 9»"), ("kdc", "ГБУЗС «Консультативно-диагностический центр»"),
        ("cdb", "ГБУЗС «Городская детская больница»"), ("onko", "ГБУЗС «Онкологический диспансер»"),
        ("ssmp", "ГБУЗС «Центр экстренной медицинской помощи»"), ("pnd", "ГБУЗС «Психоневрологический диспансер»"))
POSITIONS = ("медицинская сестра", "врач-терапевт участковый", "заведующая отделением", "медицинский регистратор",
             "врач-педиатр", "старшая медицинская сестра", "инженер-программист", "главная медицинская сестра")
LOGINS = ("ivanova_mp", "petrenko", "reg_kab12", "ter_uch5", "pediatr3", "zav_ter", "admin_gb4", "sestra_ost")
PROBLEMS = (
    "Не открывается карта пациента в МИС", "Ошибка при выписке электронного рецепта",
    "Не печатается направление на госпитализацию", "Нет доступа к модулю «Регистратура»",
    "Зависает МИС при формировании отчёта", "Не проходит подписание ЭЦП больничного листа",
    "Не отображается расписание врачей", "Сбой выгрузки в ЕГИСЗ", "Прошу восстановить пароль от МИС",
    "Не работает принтер этикеток в лаборатории", "Ошибка «Нет связи с сервером» при входе",
    "Не загружаются результаты анализов", "Прошу добавить пользователя в МИС",
    "Медленно работает МИС во второй половине дня", "Дубли пациентов в картотеке",
    "Не формируется талон амбулаторного пациента", "Не приходят записи с Госуслуг",
    "Ошибка при закрытии случая обслуживания", "Сертификат ЭЦП не виден в КриптоПро",
)
SENTENCES = (
    "При открытии карты пациента появляется окно с ошибкой и программа закрывается.",
    "Проблема возникает у всех пользователей отделения начиная с сегодняшнего утра.",
    "Перезагрузка компьютера и повторный вход в систему не помогли.",
    "Ранее такая же ошибка была в прошлом месяце, тогда её исправили обновлением.",
    "Из-за этого не можем вести приём, в очереди ожидают пациенты.",
    "Скриншот ошибки прилагаю к письму.",
    "Текст ошибки: «Объект не найден (код 0x80004005)», после нажатия «ОК» окно появляется снова.",
    "Пробовали войти под другой учётной записью — ошибка повторяется.",
    "Версия МИС на рабочем месте: 5.14.2, операционная система Windows 10.",
    "Просьба решить вопрос в приоритетном порядке, так как страдает запись пациентов.",
    "Пациентка Петрова А. В., 1956 г. р., полис ОМС 9250 3300 1234 5678.",
    "Действия: открываю журнал, выбираю пациента, нажимаю «Сформировать», получаю ошибку.",
    "На соседнем компьютере в том же кабинете всё работает без замечаний.",
    "Кабинет 214, второй этаж поликлинического отделения, рабочее место регистратора.",
    "Дополнительно сообщаю, что принтер подключён по сети и виден в списке устройств.",
    "Прошу также проверить права доступа к разделу отчётности для заведующей.",
)
GREETINGS = ("Добрый день!", "Здравствуйте!", "Добрый день, коллеги.", "Уважаемая служба поддержки!")
CLOSINGS = ("С уважением,", "Спасибо!", "Заранее благодарю,", "С уважением и надеждой на скорое решение,")
REPLIES = ("Добрый день! Проблема сохраняется, прилагаю новый скриншот.",
           "Спасибо, всё заработало. Заявку можно закрывать.",
           "Уточняю: ошибка появляется только при печати, просмотр работает.",
           "Сообщаю номер кабинета: 305. Телефон прежний.",
           "Здравствуйте. Попробовали по инструкции — не помогло, ошибка та же.")
MAILERS = ("Microsoft Outlook 16.0", "Mozilla Thunderbird 115.9.0", "The Bat! (v10.5.1) Professional",
           "Yandex.Mail", "Roundcube Webmail/1.6.5", "R7-Office Mail 2.4")


@dataclass(frozen=True)
class Mail:
    """One generated message: its bytes and what the bench needs to know about it."""

    index: int
    raw: bytes
    sender: str
    kind: str  # new, reply, auto, outsider
    images: int
    message_id: str


def _rng(seed: int, index: int, what: str = "") -> random.Random:
    return random.Random(f"{seed}:{index}:{what}")


# --- header encodings --------------------------------------------------------------


_KOI8_SUBSTITUTES = str.maketrans({"«": '"', "»": '"', "—": "-", "–": "-", "№": "N"})


def _encode(text: str, charset: str) -> bytes:
    """Bytes in `charset`; KOI8-R has no guillemets, dashes or №, so its writers type ASCII ones."""
    return (text.translate(_KOI8_SUBSTITUTES) if charset == "koi8-r" else text).encode(charset)


def _b_word(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(_encode(text, charset)).decode()}?="


def _q_word(text: str, charset: str) -> str:
    out = []
    for byte in _encode(text, charset):
        char = chr(byte)
        if char == " ":
            out.append("_")
        elif char.isascii() and (char.isalnum() or char in "!*+-/"):
            out.append(char)
        else:
            out.append(f"={byte:02X}")
    return f"=?{charset}?Q?{''.join(out)}?="


def _encoded_words(text: str, charset: str, mode: str, rng: random.Random, pieces: int) -> str:
    """`text` as `pieces` encoded-words, cut at arbitrary characters (mid-word too), folded."""
    cuts = sorted(rng.sample(range(1, len(text)), min(pieces - 1, len(text) - 1))) if pieces > 1 else []
    parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    word = _b_word if mode == "B" else _q_word
    return "\r\n ".join(word(part, charset) for part in parts)


def _header_text(text: str, rng: random.Random, charset: str, pieces: int) -> str:
    """A header value the way one of many mail clients writes it."""
    roll = rng.random()
    if roll < 0.06:
        return text.encode("utf-8").decode("latin-1")  # raw 8-bit UTF-8, as some webmail clients send
    mode = "B" if roll < 0.6 else "Q"
    return _encoded_words(text, charset, mode, rng, pieces)


# --- bodies ------------------------------------------------------------------------


def _wrap(text: str, width: int = 72) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def _transfer(data: bytes, cte: str) -> str:
    if cte == "base64":
        encoded = base64.encodebytes(data).decode("ascii")
        return encoded.replace("\n", "\r\n")
    if cte == "quoted-printable":
        return quopri.encodestring(data).decode("ascii").replace("\n", "\r\n")
    return data.decode("latin-1").replace("\n", "\r\n") + "\r\n"


def _text_part(subtype: str, text: str, charset: str, rng: random.Random) -> str:
    cte = rng.choice(("8bit", "quoted-printable", "base64")) if charset == "utf-8" or subtype == "html" \
        else rng.choice(("8bit", "8bit", "quoted-printable", "base64"))
    data = _encode(text, charset)
    return (f"Content-Type: text/{subtype}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
            + _transfer(data, cte))


def _html(text: str) -> str:
    paragraphs = "".join(
        f"<p class=\"MsoNormal\" style=\"margin:0cm;font-family:Calibri,sans-serif;font-size:11pt\">"
        f"{line or '&nbsp;'}</p>\n" for line in text.replace("&", "&amp;").replace("<", "&lt;").split("\n"))
    return ("<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><head>\n<meta http-equiv=\"Content-Type\" "
            "content=\"text/html; charset=utf-8\">\n<style>p.MsoNormal{margin:0cm;font-size:11.0pt;"
            "font-family:\"Calibri\",sans-serif;}</style></head>\n<body lang=\"RU\" link=\"#0563C1\">\n"
            f"<div class=\"WordSection1\">\n{paragraphs}</div>\n</body></html>\n")


def _jpeg(size: int, rng: random.Random) -> bytes:
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00H\x00H\x00\x00"
    return head + rng.randbytes(max(size - len(head) - 2, 0)) + b"\xff\xd9"


def _png(size: int, rng: random.Random) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 1280, 1024, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return head + rng.randbytes(max(size - len(head), 0))


def _pdf(size: int, rng: random.Random) -> bytes:
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    return head + rng.randbytes(max(size - len(head) - 6, 0)) + b"\n%%EOF"


def _rfc2231(name: str) -> str:
    quoted = "".join(c if c.isascii() and c.isalnum() or c in ".-_" else "".join(f"%{b:02X}" for b in c.encode())
                     for c in name)
    return f"filename*=utf-8''{quoted}"


def _file_part(filename: str, mime: str, data: bytes, rng: random.Random) -> str:
    disposition = "attachment" if rng.random() < 0.8 else "inline"
    encoded = base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
    return (f"Content-Type: {mime}; name=\"{_b_word(filename, 'utf-8')}\"\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: {disposition};\r\n {_rfc2231(filename)}\r\n\r\n{encoded}")


def _multipart(subtype: str, parts: list[str], boundary: str) -> str:
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return f"Content-Type: multipart/{subtype};\r\n boundary=\"{boundary}\"\r\n\r\n{body}--{boundary}--\r\n"


# --- the corpus --------------------------------------------------------------------


class Corpus:
    """`corpus[i]` is message i; `text_scale` sets the body length (1.0 gives about 100 KB per message)."""

    def __init__(self, seed: int = 20261123, text_scale: float = 1.0) -> None:
        self.seed, self.text_scale = seed, text_scale
        self._kinds: list[str] = []
        self._new_before: list[int] = [0]  # new requests among the first i messages
        self._kept: dict[int, Mail] = {}

    # which messages are new requests is decided first, so that replies can point back
    def kind(self, index: int) -> str:
        while len(self._kinds) <= index:
            i = len(self._kinds)
            roll = _rng(self.seed, i, "kind").random()
            kind = "new" if i < 3 or roll < 0.62 else "reply" if roll < 0.95 else "auto" if roll < 0.975 \
                else "outsider"
            self._kinds.append(kind)
            self._new_before.append(self._new_before[-1] + (kind == "new"))
        return self._kinds[index]

    def person(self, index: int) -> tuple[str, str, int]:
        """(display name, address, organisation index) of the writer of message `index`'s thread."""
        rng = _rng(self.seed, index, "person")
        surname, first, patronymic = rng.choice(SURNAMES), rng.choice(FIRST), rng.choice(PATRONYMIC)
        org = rng.randrange(len(ORGS))
        translit = str(rng.randrange(10_000))
        return f"{surname} {first} {patronymic}", f"user{translit}@{ORGS[org][0]}.sev.gov.ru", org

    def message_id(self, index: int) -> str:
        return f"{_rng(self.seed, index, 'mid').getrandbits(64):016x}.{index}@{ORGS[index % len(ORGS)][0]}.sev.gov.ru"

    def original(self, index: int) -> int:
        """The new request a reply at `index` answers: one of the 300 before it."""
        rng = _rng(self.seed, index, "orig")
        for _ in range(50):
            j = rng.randrange(max(0, index - 300), index)
            if self.kind(j) == "new":
                return j
        return next(j for j in range(index - 1, -1, -1) if self.kind(j) == "new")

    def __getitem__(self, index: int) -> Mail:
        """Message `index`; the first few thousand are kept, since several scenarios start from 0."""
        found = self._kept.get(index)
        if found is None:
            found = self._build(index)
            if index < KEEP:
                self._kept[index] = found
        return found

    def _build(self, index: int) -> Mail:
        kind = self.kind(index)
        rng = _rng(self.seed, index)
        charset = rng.choice(CHARSETS)
        date = START + timedelta(seconds=index * 7)
        refs: list[str] = []
        if kind == "reply":
            orig = self.original(index)
            name, address, org = self.person(orig)
            number = self._new_before[orig] + 1  # the ticket it made, when numbering followed the corpus
            subject = f"{rng.choice(('Re: ', 'RE: ', 'Ответ: '))}[{TAG} #{number}] {self._problem(orig)}"
            refs = [self.message_id(orig), f"{number:08d}-created.{index}@maildesk.localhost"]
        else:
            name, address, org = self.person(index)
            subject = self._problem(index)
            if kind == "auto":
                subject = f"Автоответ: {subject}"
            elif kind == "outsider":
                address = f"{address.split('@')[0]}@mail.example.com"
        text = self._body(kind, rng, name, org, subject)
        body = self._structure(text, charset, rng, kind)
        mid = self.message_id(index)
        headers = [
            f"From: {_header_text(name, rng, charset, rng.randint(2, 3))} <{address}>",
            f"To: =?utf-8?B?{base64.b64encode('СТП МИАЦ'.encode()).decode()}?= <{DESK}>",
            f"Subject: {_header_text(subject, rng, charset, max(1, len(subject) // 28))}",
            f"Date: {format_datetime(date)}",
            f"Message-ID: <{mid}>",
            "MIME-Version: 1.0",
            f"X-Mailer: {rng.choice(MAILERS)}",
        ]
        if refs:
            headers.append(f"In-Reply-To: <{refs[0]}>")
            headers.append("References: " + "\r\n ".join(f"<{r}>" for r in refs))
        if kind == "auto":
            headers.append("Auto-Submitted: auto-replied")
            headers.append("X-Auto-Response-Suppress: All")
        raw = ("\r\n".join(headers) + "\r\n" + body[0]).encode("latin-1")  # the text carries bytes as latin-1
        return Mail(index, raw, address, kind, body[1], mid)

    def slice(self, start: int, count: int) -> list[Mail]:
        return [self[i] for i in range(start, start + count)]

    def _problem(self, index: int) -> str:
        rng = _rng(self.seed, index, "problem")
        return rng.choice(PROBLEMS) + rng.choice(("", "", " (срочно)", " — повторно", f" в каб. {rng.randint(1, 450)}"))

    def _body(self, kind: str, rng: random.Random, name: str, org: int, subject: str) -> str:
        if kind == "auto":
            return "Я в отпуске до 15.12.2026. По срочным вопросам обращайтесь к заведующей отделением.\n"
        lines = [rng.choice(GREETINGS), ""]
        if kind == "reply":
            lines += [rng.choice(REPLIES), ""]
        count = max(1, int(rng.lognormvariate(2.3, 0.8) * self.text_scale))
        for _ in range(min(count, 400)):
            lines.append(" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 4))))
        lines.append("")
        if rng.random() < 0.9:  # the request form (001 Appendix 1), as most staff fill it in
            lines += [f"Организация: {ORGS[org][1]}", f"ФИО заявителя: {name}",
                      f"Должность: {rng.choice(POSITIONS)}", f"Логин: {rng.choice(LOGINS)}",
                      f"Контактный телефон: +7 (8692) {rng.randint(20, 99)}-{rng.randint(10, 99)}-"
                      f"{rng.randint(10, 99)}"]
        lines += ["", rng.choice(CLOSINGS), name]
        if kind == "reply":
            quoted = [f"> {line}" for line in _wrap(" ".join(rng.choice(SENTENCES) for _ in range(6)))]
            lines += ["", "-----Original Message-----", f"Subject: {subject}", *quoted]
        return "\n".join(line for block in lines for line in _wrap(block)) + "\n"

    def _structure(self, text: str, charset: str, rng: random.Random, kind: str) -> tuple[str, int]:
        """(MIME headers and body, number of images)."""
        boundary = f"----=_NextPart_{rng.getrandbits(48):012x}"
        plain = _text_part("plain", text, charset, rng)
        content = plain
        if kind != "auto" and rng.random() < 0.65:
            html = _text_part("html", _html(text), "utf-8" if rng.random() < 0.7 else charset, rng)
            content = _multipart("alternative", [plain, html], boundary + "_alt")
        images = rng.randint(1, 3) if kind in ("new", "reply") and rng.random() < 0.21 else 0
        if not images:
            return content, 0
        files = []
        for n in range(images):
            size = rng.randint(20_000, 300_000)
            if rng.random() < 0.6:
                files.append(_file_part(f"Скриншот ошибки {n + 1}.jpg", "image/jpeg", _jpeg(size, rng), rng))
            else:
                files.append(_file_part(f"image{n + 1:03d}.png", "image/png", _png(size, rng), rng))
        return _multipart("mixed", [content, *files], boundary), images


def heavy(seed: int, index: int, total: int = 10_000_000) -> bytes:
    """A request carrying `total` bytes of files (a scan, a photo, a report): the memory scenario's load."""
    rng = _rng(seed, index, "heavy")
    name = f"{rng.choice(SURNAMES)} {rng.choice(FIRST)}"
    sizes = (total * 4 // 10, total * 3 // 10, total - total * 7 // 10)
    files = [_file_part("Скан направления.pdf", "application/pdf", _pdf(sizes[0], rng), rng),
             _file_part("Фото экрана.jpg", "image/jpeg", _jpeg(sizes[1], rng), rng),
             _file_part("Отчёт за ноябрь.pdf", "application/pdf", _pdf(sizes[2], rng), rng)]
    text = (f"Добрый день!\n\nНе загружаются сканы направлений в МИС, файлы прилагаю.\n\n"
            f"Контактный телефон: +7 (8692) 55-{index % 90 + 10}-34\n\nС уважением,\n{name}\n")
    body = _multipart("mixed", [_text_part("plain", text, "utf-8", rng), *files], f"----=_Heavy_{index}")
    headers = [f"From: {_b_word(name, 'utf-8')} <heavy{index}@gb1.sev.gov.ru>", f"To: {DESK}",
               f"Subject: {_b_word('Сканы направлений не загружаются', 'koi8-r')}",
               f"Date: {format_datetime(START)}", f"Message-ID: <heavy.{seed}.{index}@gb1.sev.gov.ru>",
               "MIME-Version: 1.0"]
    return ("\r\n".join(headers) + "\r\n" + body).encode("latin-1")

