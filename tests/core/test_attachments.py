from __future__ import annotations

import gzip
import io
import unicodedata
import uuid
import zipfile

import pytest

from maildesk.core.attachments import AttachmentPolicy, check_attachments, never_stored, safe_filename
from maildesk.core.filetypes import sniff_type
from maildesk.core.model import Attachment, InboundMail
from maildesk.core.parse import parse
from tests.core.mailfactory import file, mail

POLICY = AttachmentPolicy()
TEXT = "Добрый день!\n\nПри записи пациента к логопеду выходит ошибка, скриншоты во вложении.\n"

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 200
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x22" * 200
GIF = b"GIF89a\x01\x00\x01\x00" + b"\x33" * 50
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 100 + b"This program cannot be run in DOS mode"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def zipped(*entries: tuple[str, bytes], stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, (name, data) in enumerate(entries):
            kind = zipfile.ZIP_STORED if stored_first and i == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=kind)
    return buffer.getvalue()


def cfb(clsid: uuid.UUID | None = None, streams: tuple[str, ...] = ()) -> bytes:
    """A minimal OLE compound file: header, then the directory in sector 0."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    header[30:32] = (9).to_bytes(2, "little")  # 512-byte sectors
    header[48:52] = (0).to_bytes(4, "little")  # first directory sector
    directory = bytearray()
    for i, name in enumerate(("Root Entry",) + streams):
        entry = bytearray(128)
        raw = name.encode("utf-16-le")
        entry[:len(raw)] = raw
        if i == 0 and clsid is not None:
            entry[80:96] = clsid.bytes_le
        directory += entry
    return bytes(header) + bytes(directory.ljust(512, b"\0"))


DOCX = zipped(("[Content_Types].xml", b"<Types/>"), ("_rels/.rels", b"<x/>"), ("word/document.xml", b"<w/>"))
XLSX = zipped(("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<w/>"))
PPTX = zipped(("[Content_Types].xml", b"<Types/>"), ("ppt/presentation.xml", b"<p/>"))
ODT = zipped(("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<x/>"), stored_first=True)
ODS = zipped(("mimetype", b"application/vnd.oasis.opendocument.spreadsheet"), ("content.xml", b"<x/>"),
             stored_first=True)
ZIP_OF_IMAGES = zipped(*((f"screen{i}.png", PNG) for i in range(8)))
JAR = zipped(("META-INF/MANIFEST.MF", b"Main-Class: Evil\n"), ("Evil.class", b"\xca\xfe\xba\xbe"))
APK = zipped(("AndroidManifest.xml", b"\x03\x00"), ("classes.dex", b"dex\n"))
DOC = cfb(uuid.UUID("00020906-0000-0000-c000-000000000046"), ("WordDocument", "1Table"))
XLS = cfb(None, ("Workbook",))
MSG = cfb(uuid.UUID("00020d0b-0000-0000-c000-000000000046"), ("__substg1.0_0037001F",))
MSI = cfb(uuid.UUID("000c1084-0000-0000-c000-000000000046"), ("\u4840\u3f3f",))
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
EML = (b"Received: from mx.sev.gov.ru\r\nFrom: a@sev.gov.ru\r\nSubject: test\r\nMIME-Version: 1.0\r\n"
       b"\r\nbody\r\n")

SNIFF = [
    ("jpeg", JPEG, "jpeg"),
    ("png", PNG, "png"),
    ("gif87", b"GIF87a" + b"\x00" * 20, "gif"),
    ("gif89", GIF, "gif"),
    ("bmp", b"BM" + (1000).to_bytes(4, "little") + b"\0\0\0\0" + b"\x36" + b"\0" * 30, "bmp"),
    ("text starting BM", "BMW не запускается\n".encode(), "text"),
    ("tiff le", b"II*\x00\x08\x00\x00\x00" + b"\0" * 20, "tiff"),
    ("tiff be", b"MM\x00*\x00\x00\x00\x08" + b"\0" * 20, "tiff"),
    ("webp", b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\0" * 20, "webp"),
    ("heic", b"\x00\x00\x00\x18ftypheic" + b"\0" * 20, "heic"),
    ("pdf", PDF, "pdf"),
    ("pdf after junk", b"\r\n\r\n" + PDF, "pdf"),
    ("zip", ZIP_OF_IMAGES, "zip"),
    ("empty zip", b"PK\x05\x06" + b"\0" * 18, "zip"),
    ("docx", DOCX, "docx"),
    ("xlsx", XLSX, "xlsx"),
    ("pptx", PPTX, "pptx"),
    ("odt", ODT, "odt"),
    ("ods", ODS, "ods"),
    ("jar", JAR, "jar"),
    ("apk", APK, "apk"),
    ("7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 20, "7z"),
    ("rar4", b"Rar!\x1a\x07\x00" + b"\0" * 20, "rar"),
    ("rar5", b"Rar!\x1a\x07\x01\x00" + b"\0" * 20, "rar"),
    ("gzip", gzip.compress(b"log line\n" * 10), "gzip"),
    ("doc", DOC, "doc"),
    ("xls", XLS, "xls"),
    ("msg", MSG, "msg"),
    ("msi", MSI, "msi"),
    ("bare cfb", cfb(), "cfb"),
    ("rtf", b"{\\rtf1\\ansi\\deff0 {\\fonttbl}}", "rtf"),
    ("mp4", MP4, "mp4"),
    ("mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + b"\0" * 20, "mov"),
    ("avi", b"RIFF\x24\x00\x00\x00AVI LIST" + b"\0" * 20, "avi"),
    ("mkv", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81" + b"\0" * 20, "mkv"),
    ("wmv", b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9" + b"\0" * 20, "wmv"),
    ("pe", PE, "exe"),
    ("elf", b"\x7fELF\x02\x01\x01" + b"\0" * 20, "elf"),
    ("mach-o", b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + b"\0" * 20, "macho"),
    ("shebang", b"#!/bin/sh\nrm -rf ~\n", "script"),
    ("batch", b"@echo off\r\ndel C:\\*.*\r\n", "script"),
    ("lnk", b"L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00F" + b"\0" * 40, "lnk"),
    ("utf-8 text", "Ошибка при входе в МИС\r\nКод 500\r\n".encode(), "text"),
    ("utf-8 bom", "\ufeffФИО;Логин\nИванов;ivanov\n".encode(), "text"),
    ("cp1251 text", "Ошибка при входе в МИС\r\n".encode("cp1251"), "text"),
    ("utf-16 text", "Список пользователей\r\n".encode("utf-16"), "text"),
    ("csv", b"login;role\npetrov;doctor\n", "text"),
    ("xml", b"<?xml version=\"1.0\"?><ClinicalDocument/>", "xml"),
    ("svg", b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><script/></svg>", "svg"),
    ("html", b"<!DOCTYPE html><html><body>x</body></html>", "html"),
    ("html lower", b"\n  <html><script>alert(1)</script>", "html"),
    ("eml", EML, "eml"),
    ("binary", bytes(range(256)) * 4, "binary"),
    ("empty", b"", "empty"),
]


@pytest.mark.parametrize("name, data, kind", SNIFF, ids=[s[0] for s in SNIFF])
def test_sniff_type(name: str, data: bytes, kind: str) -> None:
    assert sniff_type(data) == kind


SAFE = [
    ("Скриншот 1.png", "Скриншот 1.png"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\ivanova\\Desktop\\ошибка.jpg", "ошибка.jpg"),
    ("..hidden", "hidden"),
    (".jpg", "jpg"),
    ("", "attachment"),
    ("   ", "attachment"),
    ("...", "attachment"),
    ("/", "attachment"),
    ("report\u202egpj.exe", "reportgpj.exe"),
    ("a\u2066b\u2069\u200e\u200f.png", "ab.png"),
    ("a\x00b\r\n\t.txt", "ab.txt"),
    ("photo.exe.", "photo.exe"),
    ("photo.exe  ", "photo.exe"),
    ("CON.txt", "_CON.txt"),
    ("lpt1", "_lpt1"),
    ("a:b|c?.txt", "a_b_c_.txt"),
    ("two  spaces\u00a0here.doc", "two spaces here.doc"),
]


@pytest.mark.parametrize("name, expected", SAFE)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_caps_length_keeping_extension() -> None:
    name = safe_filename("Отчёт " * 60 + ".pdf")
    assert len(name) <= 120 and name.endswith(".pdf")
    assert len(safe_filename("x" * 300)) == 120
    assert safe_filename("x" * 300 + "." + "y" * 40, 50) == "x" * 50


def test_safe_filename_normalises_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Отчёт й.xlsx")
    assert safe_filename(decomposed) == "Отчёт й.xlsx"


def check(*files: Attachment, text: str = TEXT, html: str | None = None, policy: AttachmentPolicy = POLICY):
    return check_attachments(mail(text=text, html=html, attachments=files), policy)


def codes(verdict) -> list[str | None]:  # type: ignore[no-untyped-def]
    return [f.reason.code if f.reason else None for f in verdict.files]


def pngs(n: int) -> list[Attachment]:
    return [file(f"screen{i}.png", PNG, "image/png") for i in range(n)]


LOGO = file("image001.png", PNG, "image/png", inline=True, content_id="<image001.png@01D9>")
SIGNATURE_HTML = '<p>Ошибка</p><p>--<br><img src="cid:image001.png@01D9"></p>'


def test_three_screenshots_are_kept() -> None:
    verdict = check(*pngs(2), file("a.jpg", JPEG, "image/jpeg"))
    assert codes(verdict) == [None, None, None] and verdict.refused == () and verdict.image_count == 3


def test_six_images_are_refused_all() -> None:
    verdict = check(*pngs(5), file("six.gif", GIF, "image/gif"))
    assert codes(verdict) == ["attachment.too_many_images"] * 6
    assert [i for i, _ in verdict.refused] == [0, 1, 2, 3, 4, 5]


def test_five_images_and_a_signature_logo() -> None:
    verdict = check(*pngs(5), LOGO, html=SIGNATURE_HTML)
    assert codes(verdict) == [None] * 6 and verdict.image_count == 5


def test_inline_logo_not_referenced_counts() -> None:
    assert codes(check(*pngs(5), LOGO, html="<p>no image here</p>"))[-1] == "attachment.too_many_images"


def test_big_inline_image_counts() -> None:
    big = file("image001.png", PNG + b"\0" * 30_000, "image/png", inline=True, content_id="<image001.png@01D9>")
    assert codes(check(*pngs(5), big, html=SIGNATURE_HTML)) == ["attachment.too_many_images"] * 6


def test_attached_image_with_content_id_but_not_inline_counts() -> None:
    attached = file("image001.png", PNG, "image/png", content_id="<image001.png@01D9>")
    assert check(*pngs(5), attached, html=SIGNATURE_HTML).image_count == 6


def test_images_packed_in_an_archive_are_fine() -> None:
    verdict = check(file("screens.zip", ZIP_OF_IMAGES, "application/zip"), *pngs(2))
    assert codes(verdict) == [None, None, None] and verdict.image_count == 2


def test_images_in_a_forwarded_message_count() -> None:
    forwarded = _message_with_images(4)
    verdict = check(file("", forwarded, "message/rfc822"), *pngs(2))
    assert verdict.image_count == 6
    assert codes(verdict) == ["attachment.too_many_images"] * 3


def test_signature_logo_in_a_forwarded_message_does_not_count() -> None:
    forwarded = _message_with_images(1, logo=True)
    assert check(file("", forwarded, "message/rfc822")).image_count == 1


def _message_with_images(n: int, logo: bool = False) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@sev.gov.ru", "fwd"
    msg.set_content("см. ниже")
    if logo:
        msg.add_alternative('<img src="cid:logo1@x">', subtype="html")
        msg.get_payload()[1].add_related(PNG, "image", "png", cid="<logo1@x>")  # type: ignore[index]
    for i in range(n):
        msg.add_attachment(PNG, maintype="image", subtype="png", filename=f"f{i}.png")
    return msg.as_bytes()


EXECUTABLES = [
    ("pe named photo.jpg", file("photo.jpg", PE, "image/jpeg")),
    ("pe as pdf", file("Счёт.pdf", PE, "application/pdf")),
    ("exe", file("setup.exe", PE, "application/x-msdownload")),
    ("bat by name", file("run.bat", b"del *.*\r\n", "text/plain")),
    ("cmd upper", file("RUN.CMD", b"del *.*\r\n", "text/plain")),
    ("js declared", file("readme", b"alert(1)", "application/javascript")),
    ("vbs", file("x.vbs", b"MsgBox 1", "text/plain")),
    ("ps1", file("x.ps1", b"Get-Item", "text/plain")),
    ("scr", file("screen.scr", PE, "application/octet-stream")),
    ("dll", file("lib.dll", PE, "application/octet-stream")),
    ("msi", file("setup.msi", MSI, "application/octet-stream")),
    ("msi named doc", file("doc.doc", MSI, "application/msword")),
    ("jar", file("tool.zip", JAR, "application/zip")),
    ("apk", file("app.zip", APK, "application/zip")),
    ("shell script", file("fix.txt", b"#!/bin/bash\nrm -rf /\n", "text/plain")),
    ("elf", file("tool", b"\x7fELF\x02\x01\x01" + b"\0" * 20)),
    ("lnk", file("Отчёт.pdf.lnk", b"L\x00\x00\x00\x01\x14\x02\x00" + b"\0" * 40)),
    ("bidi-hidden exe", file("report\u202efdp.exe", PE)),
    ("exe with trailing dot", file("photo.exe.", b"plain text")),
    ("iso", file("disk.iso", b"\0" * 100)),
    ("hta", file("x.hta", b"<html><script>1</script></html>")),
]


@pytest.mark.parametrize("name, attachment", EXECUTABLES, ids=[e[0] for e in EXECUTABLES])
def test_executables_are_never_kept(name: str, attachment: Attachment) -> None:
    assert codes(check(attachment)) == ["attachment.executable"]


NOT_ALLOWED = [
    ("html page", file("page.html", b"<!doctype html><html></html>", "text/html")),
    ("svg", file("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")),
    ("heic photo", file("IMG_0001.HEIC", b"\x00\x00\x00\x18ftypheic" + b"\0" * 20, "image/heic")),
    ("unknown binary", file("data.bin2", bytes(range(256)) * 4)),
    ("empty file", file("empty.txt", b"", "text/plain")),
    ("bzip2", file("logs.bz2", b"BZh91AY&SY" + b"\0" * 20)),
]


@pytest.mark.parametrize("name, attachment", NOT_ALLOWED, ids=[n[0] for n in NOT_ALLOWED])
def test_types_not_allowed(name: str, attachment: Attachment) -> None:
    assert codes(check(attachment)) == ["attachment.type_not_allowed"]


ALLOWED = [
    ("pdf", file("Акт.pdf", PDF, "application/pdf")),
    ("jpeg declared octet-stream", file("IMG.JPG", JPEG)),
    ("png without a name", file("", PNG, "image/png")),
    ("docx", file("Список.docx", DOCX)),
    ("xlsx", file("Список.xlsx", XLSX)),
    ("doc", file("Письмо.doc", DOC)),
    ("xls", file("Отчёт.xls", XLS)),
    ("odt", file("Письмо.odt", ODT)),
    ("rtf", file("a.rtf", b"{\\rtf1\\ansi}")),
    ("csv", file("users.csv", "ФИО;Логин\nИванов;ivanov\n".encode("cp1251"))),
    ("xml", file("semd.xml", b"<?xml version='1.0'?><doc/>")),
    ("eml", file("Исходное письмо.eml", EML, "message/rfc822")),
    ("msg", file("Письмо.msg", MSG)),
    ("zip", file("screens.zip", ZIP_OF_IMAGES)),
    ("7z", file("a.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 20)),
    ("rar", file("a.rar", b"Rar!\x1a\x07\x00" + b"\0" * 20)),
    ("mp4 with a text", file("screen.mp4", MP4, "video/mp4")),
]


@pytest.mark.parametrize("name, attachment", ALLOWED, ids=[a[0] for a in ALLOWED])
def test_allowed_types(name: str, attachment: Attachment) -> None:
    verdict = check(attachment)
    assert codes(verdict) == [None] and verdict.request_reason is None


def test_total_size_limit() -> None:
    six_mb = PDF + b"\0" * (6 * 1024 * 1024)
    verdict = check(file("a.pdf", six_mb), file("b.pdf", six_mb), file("c.png", PNG))
    assert codes(verdict) == ["attachment.too_large_total"] * 3
    assert verdict.total_bytes == 2 * len(six_mb) + len(PNG)


def test_exactly_at_the_limit_is_fine() -> None:
    data = PDF + b"\0" * (10 * 1024 * 1024 - len(PDF))
    assert codes(check(file("a.pdf", data))) == [None]


def test_executable_reason_wins_over_size() -> None:
    verdict = check(file("a.exe", PE), file("big.pdf", PDF + b"\0" * 11 * 1024 * 1024))
    assert codes(verdict) == ["attachment.executable", "attachment.too_large_total"]


def test_configured_limits() -> None:
    policy = AttachmentPolicy(max_total_bytes=1000, max_images=1, allowed_types=("png", "pdf"))
    assert codes(check(file("a.pdf", PDF + b"\0" * 2000), policy=policy)) == ["attachment.too_large_total"]
    assert codes(check(*pngs(2), policy=policy)) == ["attachment.too_many_images"] * 2
    assert codes(check(file("a.jpg", JPEG), policy=policy)) == ["attachment.type_not_allowed"]


def test_verdict_names_files_safely() -> None:
    verdict = check(file("../../Отчёт.pdf", PDF))
    assert verdict.files[0].filename == "Отчёт.pdf" and verdict.files[0].kind == "pdf"


REQUESTS = [
    # (id, files, text, request reason)
    ("docx only, empty text", (file("Заявка.docx", DOCX),), "", "attachment.document_only"),
    ("docx only, greeting and signature", (file("Заявка.docx", DOCX),),
     "Добрый день!\n\nС уважением,\nИванова М.П.\nГБУЗС «ГБ №1»\nтел. 41-72-22", "attachment.document_only"),
    ("docx only, see attachment", (file("Заявка.docx", DOCX),), "Здравствуйте. Заявка во вложении.",
     "attachment.document_only"),
    ("doc only", (file("Заявка.doc", DOC),), "   \n", "attachment.document_only"),
    ("doc named, compound file", (file("Заявка.doc", cfb()),), "", "attachment.document_only"),
    ("video only", (file("Ошибка.mp4", MP4, "video/mp4"),), "", "attachment.document_only"),
    ("docx and video", (file("a.docx", DOCX), file("b.mp4", MP4)), "", "attachment.document_only"),
    ("docx with a short note", (file("Заявка.docx", DOCX),), "см.", "attachment.document_only"),
    ("exe only", (file("a.exe", PE),), "", "attachment.empty_request"),
    ("docx with a description", (file("Заявка.docx", DOCX),), "Не формируется реестр счетов за май.", None),
    ("docx and a screenshot", (file("a.docx", DOCX), file("s.png", PNG)), "", None),
    ("screenshot only", (file("s.png", PNG),), "", None),
    ("pdf only", (file("a.pdf", PDF),), "", None),
    ("no files, no text", (), "", None),
]


@pytest.mark.parametrize("name, files, text, code", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_validity(name: str, files: tuple[Attachment, ...], text: str, code: str | None) -> None:
    verdict = check(*files, text=text)
    assert (verdict.request_reason.code if verdict.request_reason else None) == code


def test_refusals_keep_the_text_and_the_other_files() -> None:
    verdict = check(file("a.exe", PE), file("b.pdf", PDF))
    assert verdict.refused[0][0] == 0 and [f.index for f in verdict.kept] == [1]
    assert verdict.request_reason is None


def test_stripped_text_is_used_when_given() -> None:
    quoted = mail(text="> Длинное старое письмо с описанием ошибки", attachments=(file("a.docx", DOCX),))
    assert check_attachments(quoted, POLICY, text="").request_reason is not None
    assert check_attachments(quoted, POLICY).request_reason is None


# --- forwarded messages, logos and hostile files (audit findings 3-6) --------------------------


def _forward(inner: bytes, content_type: str = "message/rfc822", prefix: bytes = b"") -> InboundMail:
    """A real message forwarding `inner` as an attachment, parsed as ingest parses it."""
    from email.message import EmailMessage

    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "ivanova@gb1.sev.gov.ru", "help@miac.sev.gov.ru", "Fwd: скрины"
    outer.set_content(TEXT)
    if content_type == "message/rfc822":
        from email import message_from_bytes, policy

        outer.add_attachment(message_from_bytes(inner, policy=policy.default))
    else:
        maintype, _, subtype = content_type.partition("/")
        outer.add_attachment(prefix + inner, maintype=maintype, subtype=subtype, filename="fwd.eml")
    return parse(outer.as_bytes())


def test_three_forwarded_screenshots_are_three_images() -> None:
    mail_ = _forward(_message_with_images(3))
    assert [a.content_type for a in mail_.attachments] == ["message/rfc822"] + ["image/png"] * 3
    verdict = check_attachments(mail_, POLICY)
    assert verdict.image_count == 3 and verdict.refused == ()


def test_six_forwarded_screenshots_are_refused_and_so_is_their_message() -> None:
    verdict = check_attachments(_forward(_message_with_images(6)), POLICY)
    assert verdict.image_count == 6
    assert codes(verdict) == ["attachment.too_many_images"] * 7


def test_a_forwarded_scan_is_counted_once_in_decoded_bytes() -> None:
    scan = JPEG + bytes(range(256)) * (6 * 1024 * 4)  # 6 MB, about 8 MB once base64-encoded
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["From"], inner["Subject"] = "x@gb2.sev.gov.ru", "Скан"
    inner.set_content("скан")
    inner.add_attachment(scan, maintype="image", subtype="jpeg", filename="scan.jpg")
    mail_ = _forward(inner.as_bytes())
    assert mail_.attachments[0].size > 8 * 1024 * 1024
    verdict = check_attachments(mail_, POLICY)
    assert codes(verdict) == [None, None]
    assert len(scan) <= verdict.total_bytes < len(scan) + 100


@pytest.mark.parametrize("prefix", [b"", b"\r\n", b"\n\n", b"From x@gb2.sev.gov.ru Mon Nov 23 10:00:00 2026\n",
                                    b"\xef\xbb\xbf"], ids=["plain", "blank line", "blank lines", "mbox", "bom"])
def test_a_forwarded_message_sent_as_octet_stream_counts_its_images(prefix: bytes) -> None:
    verdict = check_attachments(_forward(_message_with_images(8), "application/octet-stream", prefix), POLICY)
    assert [f.kind for f in verdict.files] == ["eml"]
    assert verdict.image_count == 8 and codes(verdict) == ["attachment.too_many_images"]


@pytest.mark.parametrize("prefix", [b"\r\n", b"From a@b Mon Nov 23 10:00:00 2026\n"])
def test_sniff_skips_what_comes_before_a_saved_message(prefix: bytes) -> None:
    assert sniff_type(prefix + EML) == "eml"


def test_a_forwarded_multipart_bomb_is_refused_without_raising() -> None:
    bomb = b"From: a@b.c\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    for i in range(3000):
        bomb += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    bomb += b"Content-Type: text/plain\r\n\r\nhi\r\n" + b"".join(b"--b%d--\r\n" % i for i in reversed(range(3000)))
    verdict = check_attachments(_forward(bomb, "application/octet-stream"), POLICY)
    [refused] = verdict.files
    assert refused.reason is not None and refused.reason.code == "attachment.type_not_allowed"
    assert "not opened" in refused.reason.detail and "deeper" in refused.reason.detail


def test_opaque_messages_nested_too_deep_are_refused() -> None:
    def wrap(inner: bytes) -> bytes:
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"], msg["Subject"] = "a@sev.gov.ru", "fwd"
        msg.set_content("см.")
        msg.add_attachment(inner, maintype="application", subtype="octet-stream", filename="in.eml")
        return msg.as_bytes()

    nested = _message_with_images(1)
    for _ in range(POLICY.max_nested_messages):
        nested = wrap(nested)
    assert codes(check(file("fwd.eml", nested))) == ["attachment.type_not_allowed"]
    assert codes(check(file("fwd.eml", wrap(wrap(_message_with_images(1)))))) == [None]


def test_a_forwarded_executable_refuses_its_message_and_neither_is_stored() -> None:
    from email.message import EmailMessage

    inner = EmailMessage()
    inner["From"], inner["Subject"] = "x@gb2.sev.gov.ru", "Программа"
    inner.set_content("вот")
    inner.add_attachment(PE, maintype="application", subtype="octet-stream", filename="setup.exe")
    mail_ = _forward(inner.as_bytes())
    verdict = check_attachments(mail_, POLICY)
    assert codes(verdict) == ["attachment.executable", "attachment.executable"]
    assert "setup.exe" in verdict.files[0].reason.detail  # type: ignore[union-attr]
    assert never_stored(mail_, verdict.refused) == {0, 1}
    opaque = check(file("fwd.eml", inner.as_bytes()))
    assert codes(opaque) == ["attachment.executable"]


def test_never_stored_finds_executables_even_unchecked() -> None:
    assert never_stored(mail(attachments=(file("a.pdf", PDF), file("photo.jpg", PE)))) == {1}


def logos(n: int) -> tuple[list[Attachment], str]:
    files = [file(f"image{i:03}.png", PNG, "image/png", inline=True, content_id=f"<image{i:03}.png@01D9>")
             for i in range(n)]
    return files, "<p>Ошибка</p>" + "".join(f'<img src="cid:image{i:03}.png@01D9">' for i in range(n))


def test_at_most_two_signature_logos_are_exempt() -> None:
    files, html = logos(2)
    assert check(*pngs(5), *files, html=html).image_count == 5
    files, html = logos(3)
    verdict = check(*pngs(5), *files, html=html)
    assert verdict.image_count == 6 and "attachment.too_many_images" in codes(verdict)
    files, html = logos(20)
    assert check(*files, html=html).image_count == 18


def test_logos_in_a_forwarded_message_share_the_cap() -> None:
    files, html = logos(2)
    forwarded = _message_with_images(0, logo=True)
    assert check(file("", forwarded, "message/rfc822"), *files, html=html).image_count == 1
