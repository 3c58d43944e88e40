"""The type of a file from its bytes: magic numbers, containers looked into, text told from scripts."""

from __future__ import annotations

import codecs
import re
import uuid

# An own table rather than the `filetype` package: it has to tell Word from
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
# What some clients and mbox files put before a saved message's header: a BOM, blank lines, a `From ` line.
_LEADER = re.compile(rb"(?:\xef\xbb\xbf)?(?:[ \t]*\r?\n)*(?:From [^\n]*\n)?")


def message_start(data: bytes) -> int:
    """Where a saved message's first header field would begin."""
    match = _LEADER.match(data)
    return match.end() if match else 0


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
    start = message_start(data)  # a saved message may come after blank lines or an mbox line
    return _text_kind(data[start:start + 8192] if start < len(data) else data[:8192])


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
