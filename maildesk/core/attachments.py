"""Check a message's files against the regulation's limits and types (001 §3.5, §3.1).

A file's type is sniffed from its bytes; its name and declared type are never trusted
to let a file in, only to keep one out (a `.bat` is plain text to a sniffer).
Archives are opaque: counted as one file, never unpacked. A violation refuses files,
never the text. Small inline images that the HTML part references by Content-ID
(signature logos, at most `signature_image_max_bytes`) do not count towards the image
limit: a requester cannot pack their mail client's signature into an archive.
Images inside an attached (forwarded) message do count, under the same exemption.
"""

from __future__ import annotations

import codecs
import email.parser
import email.policy
import re
import unicodedata
import uuid
from dataclasses import dataclass

from maildesk.core.form import meaningful_text
from maildesk.core.model import Attachment, InboundMail, Reason

IMAGE_KINDS = frozenset({"jpeg", "png", "gif", "bmp", "tiff", "webp"})
VIDEO_KINDS = frozenset({"mp4", "mov", "avi", "mkv", "wmv", "flv", "mpeg", "3gp"})
DOCUMENT_KINDS = frozenset({"doc", "docx"})
EXECUTABLE_KINDS = frozenset({"exe", "elf", "macho", "msi", "jar", "apk", "lnk", "script"})

DEFAULT_ALLOWED = (
    "jpeg", "png", "gif", "bmp", "tiff", "webp", "pdf", "rtf", "text", "xml", "eml",
    "doc", "xls", "ppt", "msg", "cfb", "docx", "xlsx", "pptx", "odt", "ods", "odp",
    "zip", "7z", "rar", "gzip",
    # 001 §3.4 takes video as a supplement to a described problem, not as the request itself.
    "mp4", "mov", "avi", "mkv", "wmv",
)


@dataclass(frozen=True)
class AttachmentPolicy:
    max_total_bytes: int = 10 * 1024 * 1024
    max_images: int = 5
    signature_image_max_bytes: int = 20 * 1024
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED  # kinds as sniff_type() names them
    min_text_chars: int = 10  # less meaningful text than this is no explanation
    max_filename_chars: int = 120


@dataclass(frozen=True)
class FileVerdict:
    index: int  # position in mail.attachments
    filename: str  # safe_filename() of the name as sent
    kind: str
    size: int
    images: int = 0  # images this file adds to the count (more than one for a forwarded message)
    reason: Reason | None = None

    @property
    def kept(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class AttachmentVerdict:
    files: tuple[FileVerdict, ...] = ()
    request_reason: Reason | None = None  # set when the mail is no valid request at all
    total_bytes: int = 0
    image_count: int = 0

    @property
    def refused(self) -> tuple[tuple[int, Reason], ...]:
        return tuple((f.index, f.reason) for f in self.files if f.reason is not None)

    @property
    def kept(self) -> tuple[FileVerdict, ...]:
        return tuple(f for f in self.files if f.kept)


_BAD_EXTENSIONS = frozenset(
    "exe com scr pif cpl dll sys ocx drv msi msp mst msc bat cmd ps1 psm1 psd1 vbs vbe js jse mjs "
    "wsf wsh wsc ws sct hta jar class sh bash zsh csh ksh command run bin py pl rb php lnk url scf "
    "reg inf chm xll gadget application appx msix apk app deb rpm dmg iso img vhd vhdx".split()
)
_BAD_DECLARED = frozenset({
    "application/x-msdownload", "application/x-dosexec", "application/x-executable",
    "application/x-msdos-program", "application/x-msi", "application/x-ms-installer",
    "application/vnd.microsoft.portable-executable", "application/x-sh", "application/x-shellscript",
    "application/x-bat", "application/javascript", "text/javascript", "application/x-javascript",
    "application/hta", "text/vbscript", "application/java-archive", "application/x-java-archive",
    "application/x-ms-shortcut",
})
_DEVICE_NAMES = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?\Z", re.I)
_RESERVED = re.compile(r'[<>:"/\\|?*]')


def check_attachments(mail: InboundMail, policy: AttachmentPolicy, text: str | None = None) -> AttachmentVerdict:
    """Each file kept or refused with its reason, and whether the mail is still a request."""
    html = (mail.html or "").lower()
    files = [_inspect(i, a, html, policy) for i, a in enumerate(mail.attachments)]
    total = sum(f.size for f in files)
    images = sum(f.images for f in files)
    files = [_with_reason(f, total, images, policy) for f in files]
    body = mail.text if text is None else text
    return AttachmentVerdict(tuple(files), _request_problem(files, body, policy), total, images)


def safe_filename(name: str, max_chars: int = 120) -> str:
    """A file name safe to store and show: no path, no control or bidi characters, never empty."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    name = re.split(r"[/\\]", name)[-1]
    name = " ".join(_RESERVED.sub("_", name).split())
    # Windows drops trailing dots and spaces (`x.exe.` opens as x.exe); leading dots hide files.
    name = name.strip(". ")
    if _DEVICE_NAMES.match(name):
        name = "_" + name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    if len(name) > max_chars:
        keep = max(1, max_chars - len(ext) - 1) if ext else max_chars
        name = stem[:keep].rstrip(". ") + ("." + ext if ext else "")
    return name or "attachment"


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def _inspect(index: int, a: Attachment, html: str, policy: AttachmentPolicy) -> FileVerdict:
    name = safe_filename(a.filename or "", policy.max_filename_chars)
    kind = sniff_type(a.data)
    if kind == "eml":
        images = _images_in_message(a.data, policy)
    else:
        images = int(kind in IMAGE_KINDS and not _is_signature_image(a, html, policy))
    return FileVerdict(index, name, kind, a.size, images, _type_problem(a, name, kind, policy))


def _type_problem(a: Attachment, name: str, kind: str, policy: AttachmentPolicy) -> Reason | None:
    declared = a.content_type.split(";")[0].strip().lower()
    if kind in EXECUTABLE_KINDS or _extension(name) in _BAD_EXTENSIONS or declared in _BAD_DECLARED:
        return Reason("attachment.executable", f"{name}: executable or script ({kind}) is never stored")
    if kind not in policy.allowed_types:
        return Reason("attachment.type_not_allowed", f"{name}: type {kind} is not allowed")
    return None


def _with_reason(f: FileVerdict, total: int, images: int, policy: AttachmentPolicy) -> FileVerdict:
    if f.reason is not None:
        return f
    if total > policy.max_total_bytes:
        reason = Reason("attachment.too_large_total", f"files total {total} bytes, over {policy.max_total_bytes}")
    elif f.images and images > policy.max_images:
        reason = Reason("attachment.too_many_images", f"{images} images, over {policy.max_images}: pack them")
    else:
        return f
    return FileVerdict(f.index, f.filename, f.kind, f.size, f.images, reason)


def _is_signature_image(a: Attachment, html: str, policy: AttachmentPolicy) -> bool:
    cid = (a.content_id or "").strip().strip("<>").lower()
    return bool(a.inline and cid and a.size <= policy.signature_image_max_bytes and f"cid:{cid}" in html)


def _images_in_message(data: bytes, policy: AttachmentPolicy) -> int:
    """Images inside a forwarded message, with the same signature exemption."""
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    leaves = [p for p in message.walk() if not p.is_multipart()]
    payloads = [(p, p.get_payload(decode=True)) for p in leaves]
    html = b" ".join(d for p, d in payloads if d and p.get_content_type() == "text/html").decode("latin-1").lower()
    count = 0
    for part, data_ in payloads:
        if not isinstance(data_, bytes) or sniff_type(data_) not in IMAGE_KINDS:
            continue
        nested = Attachment(part.get_filename() or "", part.get_content_type(), data_,
                            inline=(part.get_content_disposition() or "inline") == "inline",
                            content_id=part.get("Content-ID"))
        count += not _is_signature_image(nested, html, policy)
    return count


def _request_problem(files: list[FileVerdict], text: str, policy: AttachmentPolicy) -> Reason | None:
    """001 §3.1: a document or video without an explanation is no request; nor is nothing at all."""
    if not files or len(meaningful_text(text)) >= policy.min_text_chars:
        return None
    if all(_document_like(f) for f in files):
        return Reason("attachment.document_only", "only a Word document or video, without a text")
    if not any(f.kept for f in files):
        return Reason("attachment.empty_request", "no text and no file that could be kept")
    return None


def _document_like(f: FileVerdict) -> bool:
    # A Word file whose inner names we could not read still counts by its name here:
    # the name can only make the mail less acceptable, never more.
    by_name = f.kind in ("cfb", "zip") and _extension(f.filename) in ("doc", "docx")
    return f.kind in DOCUMENT_KINDS or f.kind in VIDEO_KINDS or by_name


# Sniffing. An own table rather than the `filetype` package: it has to tell Word from
# Excel from Outlook .msg from an MSI installer (all four are OLE compound files),
# find jars among zips and scripts among text, and the whole table fits on one screen.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"), (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"), (0, b"II*\x00", "tiff"), (0, b"MM\x00*", "tiff"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"), (0, b"Rar!\x1a\x07", "rar"), (0, b"\x1f\x8b", "gzip"),
    (0, b"BZh", "bzip2"), (0, b"\xfd7zXZ\x00", "xz"), (0, b"{\\rtf", "rtf"),
    (0, b"\x1a\x45\xdf\xa3", "mkv"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "wmv"), (0, b"FLV\x01", "flv"),
    (0, b"\x00\x00\x01\xba", "mpeg"), (0, b"\x00\x00\x01\xb3", "mpeg"),
    (0, b"MZ", "exe"), (0, b"\x7fELF", "elf"), (0, b"\xfe\xed\xfa\xce", "macho"), (0, b"\xfe\xed\xfa\xcf", "macho"),
    (0, b"\xce\xfa\xed\xfe", "macho"), (0, b"\xcf\xfa\xed\xfe", "macho"), (0, b"\xca\xfe\xba\xbe", "macho"),
    (0, b"L\x00\x00\x00\x01\x14\x02\x00", "lnk"), (0, b"#!", "script"),
)
_RIFF = {b"WEBP": "webp", b"AVI ": "avi", b"WAVE": "audio"}
_FTYP_OTHER = {b"qt  ": "mov", b"3gp4": "3gp", b"3gp5": "3gp", b"3g2a": "3gp", b"heic": "heic", b"heix": "heic",
               b"mif1": "heic", b"msf1": "heic", b"avif": "avif", b"M4A ": "audio"}
_ODF = {b"application/vnd.oasis.opendocument.text": "odt",
        b"application/vnd.oasis.opendocument.spreadsheet": "ods",
        b"application/vnd.oasis.opendocument.presentation": "odp"}
_CFB_INSTALLERS = {uuid.UUID("000c1084-0000-0000-c000-000000000046"),  # .msi
                   uuid.UUID("000c1086-0000-0000-c000-000000000046"),  # .msp
                   uuid.UUID("000c1082-0000-0000-c000-000000000046")}  # .mst
_CFB_STREAMS = (("WordDocument", "doc"), ("Workbook", "xls"), ("Book", "xls"),
                ("PowerPoint Document", "ppt"), ("__substg1.0_", "msg"))
_EML_HEAD = re.compile(r"(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*){2,}")
_EML_FIELDS = re.compile(r"^(from|date|subject|message-id|received|mime-version|return-path):", re.I | re.M)


def sniff_type(data: bytes) -> str:
    """The kind of file the bytes are: "jpeg", "pdf", "docx", "exe", "text", ... or "binary"."""
    if not data:
        return "empty"
    for offset, magic, kind in _MAGIC:
        if data.startswith(magic, offset):
            return kind
    if data[:4] == b"RIFF":
        return _RIFF.get(data[8:12], "binary")
    if data[4:8] == b"ftyp":
        return _FTYP_OTHER.get(data[8:12], "mp4")
    if data[:2] == b"BM" and len(data) >= 26 and data[6:10] == b"\0\0\0\0":
        return "bmp"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip_kind(data)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return _cfb_kind(data)
    if b"%PDF-" in data[:1024]:  # readers accept junk before the header
        return "pdf"
    return _text_kind(data[:8192])


def _zip_kind(data: bytes) -> str:
    """Office and Java formats are zips: tell them apart by entry names, without unpacking."""
    if data[30:38] == b"mimetype":  # ODF stores its media type first, uncompressed
        return next((k for m, k in _ODF.items() if data[38:38 + len(m)] == m), "zip")
    if b"[Content_Types].xml" in data:
        for marker, kind in ((b"word/", "docx"), (b"xl/", "xlsx"), (b"ppt/", "pptx")):
            if marker in data:
                return kind
    if b"AndroidManifest.xml" in data:
        return "apk"
    return "jar" if b"META-INF/MANIFEST.MF" in data else "zip"


def _cfb_kind(data: bytes) -> str:
    """An OLE compound file: an installer by its root CLSID, otherwise by its stream names."""
    shift = int.from_bytes(data[30:32], "little")
    if shift in (9, 12):
        root = (int.from_bytes(data[48:52], "little") + 1) << shift
        if len(data) >= root + 96 and uuid.UUID(bytes_le=data[root + 80:root + 96]) in _CFB_INSTALLERS:
            return "msi"
    return next((k for name, k in _CFB_STREAMS if name.encode("utf-16-le") in data), "cfb")


def _text_kind(sample: bytes) -> str:
    text = _decode_text(sample)
    if text is None:
        return "binary"
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\x1a" or ord(ch) == 127)
    if controls > len(text) // 100:
        return "binary"
    head = text.lstrip("\ufeff \t\r\n")[:512].lower()
    if head.startswith("#!") or head.startswith("@echo off"):
        return "script"
    if head.startswith("<svg") or (head.startswith("<?xml") and "<svg" in head):
        return "svg"
    if head.startswith("<?xml"):
        return "xml"
    if head.startswith(("<!doctype html", "<html", "<head", "<body", "<script")):
        return "html"
    normalised = text.lstrip("\ufeff").replace("\r\n", "\n")
    if _EML_HEAD.match(normalised) and _EML_FIELDS.search(normalised.split("\n\n", 1)[0]):
        return "eml"
    return "text"


def _decode_text(sample: bytes) -> str | None:
    """The sample as text (UTF-16 with BOM, UTF-8, or Windows-1251), None for binary data."""
    if sample[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return sample.decode("utf-16", "replace")
    if b"\x00" in sample:
        return None
    try:  # incremental: the sample may end inside a multi-byte character
        return codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError:
        pass
    try:
        return sample.decode("cp1251")
    except UnicodeDecodeError:
        return None
