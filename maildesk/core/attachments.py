"""Check a message's files against the regulation's limits and types (001 §3.5, §3.1).

A file's type is sniffed from its bytes; its name and declared type are never trusted
to let a file in, only to keep one out (a `.bat` is plain text to a sniffer).
Archives are opaque: counted as one file, never unpacked. A violation refuses files,
never the text.

Images: at most `max_images` image files over every MIME part, inline or attached,
forwarded ones included. Small inline images that an HTML part shows by `cid:`
(signature logos, at most `signature_image_max_bytes` each) do not count, but only
`max_signature_logos` of them per mail (forwarded messages included): the ones after
that count as images. A requester cannot pack their mail client's signature into an
archive; a hundred "logos" are screenshots.

Forwarded messages (an attached `.eml`, whether declared `message/rfc822` or sent as
an octet-stream, with or without a leading blank line or mbox `From ` line) are opened
with the parser's own bounded splitter and counted once: when parse() listed the
forwarded files after the `.eml` itself, those files are checked one by one and the
`.eml` adds only its own text; otherwise the `.eml` counts every image and file inside
it. Sizes are decoded leaf bytes. A forwarded message that holds a refused file is
refused as well; one too deep or too big to open is refused (type not allowed), saying why.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

from maildesk.core.filetypes import message_start, sniff_type
from maildesk.core.form import meaningful_text
from maildesk.core.mime_body import collect
from maildesk.core.mime_tree import build_tree, walk
from maildesk.core.model import Attachment, InboundMail, Reason
from maildesk.core.parse import ParseLimits, check_limits

IMAGE_KINDS = frozenset({"jpeg", "png", "gif", "bmp", "tiff", "webp"})
VIDEO_KINDS = frozenset({"mp4", "mov", "avi", "mkv", "wmv", "flv", "mpeg", "3gp"})
DOCUMENT_KINDS = frozenset({"doc", "docx"})
EXECUTABLE_KINDS = frozenset({"exe", "elf", "macho", "msi", "jar", "apk", "lnk", "script"})
MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})

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
    max_signature_logos: int = 2  # cid: logos exempt from the image count, per mail
    max_nested_messages: int = 3  # an opaque .eml inside an opaque .eml is opened this deep, then refused
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
    logos: int = 0  # signature logos it holds, exempt up to max_signature_logos per mail
    counted: int = 0  # decoded bytes it adds to the total (0 when its forwarded message counts them)

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
    files, spans = _inspect_all(mail, policy)
    files = _exempt_logos(files, policy)
    total = sum(f.counted for f in files)
    images = sum(f.images for f in files)
    files = _refuse_containers([_with_reason(f, total, images, policy) for f in files], spans)
    body = mail.text if text is None else text
    return AttachmentVerdict(tuple(files), _request_problem(files, body, policy), total, images)


def never_stored(mail: InboundMail, refused: tuple[tuple[int, Reason], ...] = ()) -> frozenset[int]:
    """Indexes of files whose bytes must not reach the archive: executables, and what holds one.

    The raw message is archived anyway, so an admin can still recover them from it.
    """
    found = {i for i, r in refused if r.code == "attachment.executable"}
    for i, a in enumerate(mail.attachments):
        if sniff_type(a.data) in EXECUTABLE_KINDS or _extension(a.filename or "") in _BAD_EXTENSIONS:
            found.add(i)
    return frozenset(found)


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


@dataclass(frozen=True)
class _Opened:
    """A forwarded message taken apart: its files as parse() lists them, its bytes, its HTML."""

    files: tuple[Attachment, ...] = ()
    leaf_bytes: int = 0  # decoded bytes of every leaf, its text included
    html: str = ""  # lower-cased, where its cid: references are
    problem: Reason | None = None


_LIMITS = ParseLimits()


def _open_message(data: bytes, name: str) -> _Opened:
    """Open a forwarded message with the parser's bounded splitter; never raises."""
    body = data[message_start(data):]
    limit = check_limits(body)
    if limit is not None:
        return _Opened(leaf_bytes=len(data), problem=_unreadable(name, limit.detail or limit.code))
    try:
        root, _ = build_tree(body, _LIMITS.max_depth, _LIMITS.max_parts)
        found = collect(root, ())
        leaves = [e for e in walk(root) if e.kind == "leaf"]
        html = " ".join(e.body().decode("latin-1") for e in leaves if e.content_type == "text/html").lower()
        return _Opened(tuple(found.attachments), sum(len(e.body()) for e in leaves), html)
    except Exception as exc:  # hostile input must end in a verdict, never in a crash
        return _Opened(leaf_bytes=len(data), problem=_unreadable(name, f"cannot be opened ({type(exc).__name__})"))


def _unreadable(name: str, why: str) -> Reason:
    # a file type the desk does not take: a message it cannot open is no message to it
    return Reason("attachment.type_not_allowed", f"{name}: forwarded message not opened: {why}")


def _listed_after(atts: tuple[Attachment, ...], i: int, files: tuple[Attachment, ...]) -> bool:
    """Whether parse() listed the forwarded message's files right after it (a message/rfc822 part)."""
    following = atts[i + 1:i + 1 + len(files)]
    return bool(files) and len(following) == len(files) and all(
        a.data == f.data and a.content_type == f.content_type for a, f in zip(following, files))


def _inspect_all(mail: InboundMail, policy: AttachmentPolicy) -> tuple[list[FileVerdict], dict[int, int]]:
    """A verdict per file, and for each forwarded message parse() opened, how many files it listed after it."""
    atts = mail.attachments
    html = [(mail.html or "").lower()] * len(atts)  # where a file's cid: reference would be
    inside = [False] * len(atts)  # its bytes are counted with the forwarded message that holds it
    opened: dict[int, _Opened] = {}
    spans: dict[int, int] = {}
    for i, a in enumerate(atts):
        if a.content_type.lower() in MESSAGE_TYPES and sniff_type(a.data) in ("eml", "text"):
            o = opened[i] = _open_message(a.data, safe_filename(a.filename or "", policy.max_filename_chars))
            if _listed_after(atts, i, o.files):
                spans[i] = len(o.files)
                for j in range(i + 1, i + 1 + len(o.files)):  # a nested message's own files are set later
                    inside[j], html[j] = True, o.html
                opened[i] = replace(o, files=())  # its files have verdicts of their own
    files = [_inspect(i, a, html[i], opened.get(i), policy) for i, a in enumerate(atts)]
    return [replace(f, counted=0) if inside[f.index] else f for f in files], spans


def _inspect(index: int, a: Attachment, html: str, opened: _Opened | None, policy: AttachmentPolicy) -> FileVerdict:
    name = safe_filename(a.filename or "", policy.max_filename_chars)
    if opened is not None:  # a message/rfc822 part
        return _message_verdict(index, name, a, opened, policy, depth=0)
    kind = sniff_type(a.data)
    if kind == "eml":
        return _message_verdict(index, name, a, _open_message(a.data, name), policy, depth=0)
    problem = _type_problem(a, name, kind, policy)
    if kind not in IMAGE_KINDS:
        return FileVerdict(index, name, kind, a.size, 0, problem, 0, a.size)
    logo = _is_signature_image(a, html, policy)
    return FileVerdict(index, name, kind, a.size, int(not logo), problem, int(logo), a.size)


def _message_verdict(index: int, name: str, a: Attachment, opened: _Opened, policy: AttachmentPolicy,
                     depth: int) -> FileVerdict:
    images, logos, problem = _inside(name, opened, policy, depth)
    problem = _type_problem(a, name, "eml", policy) or opened.problem or problem
    return FileVerdict(index, name, "eml", a.size, images, problem, logos, opened.leaf_bytes)


def _inside(name: str, opened: _Opened, policy: AttachmentPolicy, depth: int) -> tuple[int, int, Reason | None]:
    """Images, signature logos and the first refused file of a forwarded message not listed by parse()."""
    images = logos = 0
    problems: list[Reason] = []
    for f in opened.files:
        if f.content_type.lower() in MESSAGE_TYPES:
            continue  # a nested message/rfc822: its files are in the list too
        inner_name = safe_filename(f.filename or "")
        kind = sniff_type(f.data)
        if kind == "eml":
            if depth + 1 >= policy.max_nested_messages:
                problems.append(_unreadable(inner_name, "forwarded messages nested too deep"))
                continue
            inner = _open_message(f.data, inner_name)
            sub_images, sub_logos, sub_problem = _inside(inner_name, inner, policy, depth + 1)
            images, logos = images + sub_images, logos + sub_logos
            problems.extend(p for p in (inner.problem, sub_problem) if p is not None)
            continue
        problem = _type_problem(f, inner_name, kind, policy)
        if problem is not None:
            problems.append(problem)
        if kind in IMAGE_KINDS:
            logo = _is_signature_image(f, opened.html, policy)
            images, logos = images + (not logo), logos + logo
    return images, logos, _holder_reason(name, problems)


def _holder_reason(name: str, problems: list[Reason]) -> Reason | None:
    """Why a forwarded message is refused, from the files in it: an executable first.

    The code is the refused file's own (executable, type_not_allowed, ...), so that the
    notice to the requester names the real problem.
    """
    if not problems:
        return None
    worst = next((p for p in problems if p.code == "attachment.executable"), problems[0])
    detail = "; ".join(p.detail or p.code for p in problems[:5])
    return Reason(worst.code, f"{name}: the forwarded message holds a refused file: {detail}")


def _exempt_logos(files: list[FileVerdict], policy: AttachmentPolicy) -> list[FileVerdict]:
    """The first max_signature_logos logos do not count as images; the rest do."""
    left, out = policy.max_signature_logos, []
    for f in files:
        exempt = min(f.logos, left)
        left -= exempt
        out.append(replace(f, images=f.images + f.logos - exempt, logos=exempt) if f.logos else f)
    return out


def _refuse_containers(files: list[FileVerdict], spans: dict[int, int]) -> list[FileVerdict]:
    """A forwarded message whose listed files were refused is refused too: it holds their bytes."""
    for i in sorted(spans, reverse=True):  # innermost first, so that refusals travel outwards
        problems = [g.reason for g in files[i + 1:i + 1 + spans[i]] if g.reason is not None]
        if problems and files[i].reason is None:
            files[i] = replace(files[i], reason=_holder_reason(files[i].filename, problems))
    return files


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
    return replace(f, reason=reason)


def _is_signature_image(a: Attachment, html: str, policy: AttachmentPolicy) -> bool:
    cid = (a.content_id or "").strip().strip("<>").lower()
    return bool(a.inline and cid and a.size <= policy.signature_image_max_bytes and f"cid:{cid}" in html)


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
