"""Readable text from mail bodies: HTML to plain text, and the new part of a reply without its quoted history."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "head", "title", "template", "noscript", "xml"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source", "param", "embed"}
_BLOCK = {
    "div", "tr", "table", "ul", "ol", "dl", "dt", "dd", "section", "article", "header", "footer",
    "address", "center", "form", "fieldset", "nav", "aside", "main", "figure", "caption",
}  # fmt: skip
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)
_SPACES = re.compile(r"\s+")


class _TextWriter(HTMLParser):
    """Collects text line by line; `>` marks lines inside blockquotes so quotes stay recognisable."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._quote = 0
        self._pre = 0
        self._skip: list[str] = []
        self._lists: list[list[int]] = []  # one counter per open list; [-1] for <ul>
        self._links: list[tuple[str, list[str]]] = []
        self._outlook_p = False

    # -- output ----------------------------------------------------------------------
    def _write(self, text: str) -> None:
        if not self._line:
            self._line_depth = self._quote
        self._line.append(text)
        for _, seen in self._links:
            seen.append(text)

    def _end_line(self) -> None:
        """Finish the current line, if anything is on it."""
        if self._line:
            self._break()

    def _break(self) -> None:
        """A line break: finish the current line, or add an empty one."""
        text = "".join(self._line).rstrip()
        prefix = ">" * self._line_depth + " " if self._line_depth else ""
        self.lines.append(prefix + text if text else ">" * self._quote)
        self._line = []

    def _paragraph(self) -> None:
        """Finish the current line and leave one empty line after it."""
        self._end_line()
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append(">" * self._quote)

    # -- parser callbacks -------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and self._skip[:1] == ["head"]:
            self._skip = []  # an unclosed <head> ends where the body starts, as in browsers
        if self._skip:
            if tag == self._skip[-1] and tag not in _VOID:
                self._skip.append(tag)
            return
        attributes = dict(attrs)
        if tag in _SKIP or _HIDDEN.search(attributes.get("style") or ""):
            if tag not in _VOID:
                self._skip.append(tag)
            return
        self._open(tag, attributes)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skip:
            self._open(tag, dict(attrs))
            if tag not in _VOID:
                self.handle_endtag(tag)

    def _open(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "br":
            self._break()
        elif tag == "p" and "msonormal" in (attrs.get("class") or "").lower():
            self._end_line()  # Outlook writes one <p> per line, without margins
            self._outlook_p = True
        elif tag == "hr":
            self._paragraph()
            self._write("-" * 20)
            self._paragraph()
        elif tag in _PARAGRAPH:
            self._paragraph()
            self._outlook_p = False
            self._quote += tag == "blockquote"
            self._pre += tag == "pre"
        elif tag in ("ul", "ol"):
            self._end_line()
            self._lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._end_line()
            counter = self._lists[-1] if self._lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
            marker = f"{counter[0]}. " if counter[0] >= 0 else "- "
            self._write("  " * max(len(self._lists) - 1, 0) + marker)
        elif tag in _BLOCK:
            self._end_line()
        elif tag in ("td", "th") and self._line:
            self._write("\t")
        elif tag == "a":
            if self._links:  # anchors do not nest: a new one closes the open one, as in browsers
                self.handle_endtag("a")
            self._links.append((attrs.get("href") or "", []))
        elif tag == "img" and attrs.get("alt"):
            self._write(attrs["alt"] or "")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag == "a" and self._links:
            href, seen = self._links.pop()
            self._write_link(href.strip(), " ".join("".join(seen).split()))
        elif tag == "p" and self._outlook_p:
            self._break()  # an empty Outlook paragraph is how Outlook writes a blank line
        elif tag == "blockquote":
            self._end_line()
            self._quote = max(self._quote - 1, 0)
            self._paragraph()
        elif tag in _PARAGRAPH and tag != "hr":
            self._paragraph()
            self._pre = max(self._pre - 1, 0)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._end_line()
        elif tag in _BLOCK or tag == "li":
            self._end_line()

    def _write_link(self, href: str, text: str) -> None:
        target = href[7:] if href.lower().startswith("mailto:") else href
        if not target or not text or href.startswith("#") or href.lower().startswith("javascript:"):
            return
        bare = re.sub(r"^[a-z]+://", "", target, flags=re.I).rstrip("/")
        if text.rstrip("/") not in (target.rstrip("/"), bare):
            self._write(f" ({target})")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            for i, chunk in enumerate(data.replace("\r\n", "\n").split("\n")):
                if i:
                    self._break()
                self._write(chunk.replace("\xa0", " "))
            return
        text = _SPACES.sub(" ", data.replace("\xa0", " "))
        if not self._line:
            text = text.lstrip()
        elif self._line[-1].endswith((" ", "\t")):
            text = text.lstrip(" ")
        if text:
            self._write(text)

    def result(self) -> str:
        self._end_line()
        text = "\n".join(line.rstrip() for line in self.lines)
        text = re.sub(r"\n(?:[ \t>]*\n){2,}", "\n\n", text)
        return text.strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: paragraphs, line breaks, lists, `text (url)` links."""
    writer = _TextWriter()
    try:
        writer.feed(html)
        writer.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed markup
        return re.sub(r"<[^>]*>", " ", html)
    return writer.result()


def unflow(text: str, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed (Thunderbird's default): soft line breaks joined, stuffing removed."""
    out: list[str] = []
    joining = False
    last_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        body = line[depth:]
        body = body[1:] if body.startswith(" ") else body
        prefix = ">" * depth + " " if depth else ""
        if joining and depth == last_depth:
            out[-1] += body
        else:
            out.append(prefix + body)
        flowed = body.endswith(" ") and body != "-- "
        if flowed and delsp:
            out[-1] = out[-1][:-1]
        joining, last_depth = flowed, depth
    return "\n".join(out)


# --- quoted history -------------------------------------------------------------------

_SEPARATOR = re.compile(
    r"^\s*[-_=]*\s*(?:original message|исходное сообщение|ursprüngliche nachricht|"
    r"оригинальное сообщение|reply message)\s*[-_=]*\s*$",
    re.I,
)
_WROTE = re.compile(r"(?:пишет|написал\(а\)|написала|написал|wrote|schrieb|a écrit)\s*:\s*$", re.I)
_DATE_OR_TIME = re.compile(r"\d{1,2}:\d{2}|\d{4}")
_MAX_ATTRIBUTION = 400  # longer lines are text, and regexes on them would cost more
_FROM = re.compile(r"^\s*\*?(?:от|from|von|de)\s*:\*?\s*\S", re.I)
_SENT = re.compile(r"^\s*\*?(?:отправлено|sent|дата|date|gesendet|envoyé)\s*:", re.I)
_TO = re.compile(r"^\s*\*?(?:кому|to|тема|subject|an|betreff|копия|cc|à|objet)\s*:", re.I)
_RULE = re.compile(r"^\s*[-_=]{5,}\s*$")


def _outlook_header(lines: list[str], i: int) -> bool:
    """`От: … Отправлено: … Кому: … Тема: …` (Outlook and Exchange web mail, RU and EN)."""
    if not _FROM.match(lines[i]):
        return False
    block = lines[i + 1 : i + 7]
    return any(_SENT.match(ln) for ln in block) and any(_TO.match(ln) for ln in block)


def _attribution(lines: list[str], i: int) -> int:
    """Lines taken by an `On … wrote:` style header starting at line i (0 when there is none)."""
    line = lines[i].strip()
    if not line or line.startswith(">"):
        return 0
    for span in (1, 2, 3):  # clients wrap long attribution lines, never across a blank line
        if i + span > len(lines) or not lines[i + span - 1].strip():
            break
        joined = " ".join(ln.strip() for ln in lines[i : i + span])
        if len(joined) > _MAX_ATTRIBUTION:
            break
        if not joined.endswith(":"):  # every attribution below ends so: no regex for the other lines
            continue
        # A real attribution names a date or an address; "Пользователь пишет:" in a request does not.
        if _WROTE.search(joined) and re.search(r"\d|@", joined):
            return span
        if joined.endswith(">:") and "@" in joined and _DATE_OR_TIME.search(joined):  # Gmail RU, Yandex, Mail.ru
            return span
        if joined.endswith(":"):
            break
    return 0


def _quote_start(lines: list[str]) -> tuple[int, int] | None:
    """Where the quoted history starts, and how many header lines announce it."""
    for i, line in enumerate(lines):
        if _SEPARATOR.match(line) or _outlook_header(lines, i):
            return i, 1
        span = _attribution(lines, i)
        nxt = lines[i + span : i + span + 2]
        if span and (not nxt or any(ln.startswith(">") or not ln.strip() for ln in nxt)):
            return i, span
    return None


def strip_quoted(text: str) -> str:
    """The new part of a reply: text above the quoted history, or below it when the reply is bottom-posted."""
    lines = text.replace("\r\n", "\n").split("\n")
    found = _quote_start(lines)
    if found is not None:
        start, span = found
        above = lines[:start]
        while above and (not above[-1].strip() or _RULE.match(above[-1])):
            above.pop()
        if any(ln.strip() for ln in above):
            lines = above
        else:  # bottom-posting: drop the header and the quote under it, keep the answer below
            rest = lines[start + span :]
            while rest and (rest[0].startswith(">") or not rest[0].strip()):
                rest.pop(0)
            lines = rest
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    return "\n".join(lines).strip("\n")
