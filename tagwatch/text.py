"""Text preparation: question bodies (HTML, Markdown or plain text) into model text.

Code is kept, separately from prose: tokens such as ``import pandas as pd``, ``$(document)`` or ``<?php`` are among
the strongest tag signals, but long code dumps would otherwise drown the prose.

Bodies come from anyone through the API, so every step takes time linear in the body's length. The single regexes
this module used to run (kept in bench/legacy_text.py) retried a failing match from every ``<pre``, ``<``,
``<a ``, ``[`` or line start, each time reading to the end of the body: 11,000 unclosed ``<pre>`` took 6.5 s. Now
no try can fail after a long read. A regex runs only up to the last point where a match can end (the last ``>``,
``)`` or end tag): beyond it every try would fail. A run of tries bound to fail alike (every ``[`` before the same
``]``) is taken at once by a second branch that puts the text back unchanged. Markdown fences are found by a scan
from fence line to fence line. The output is the old regexes', character for character (tests/tagwatch/
test_text.py compares the two on the bundled questions and on generated hostile bodies), but for one case: a
numeric character reference of more than 4,300 digits, on which html.unescape raised ValueError (a 500 from the
API), decodes as U+FFFD like any other number above U+10FFFF.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, NamedTuple, Protocol

BodyFormat = Literal["html", "markdown", "text", "none"]
BODY_FORMATS: tuple[str, ...] = ("html", "markdown", "text", "none")

# Bodies are cut to this before any scan: the API's default limit (Settings.max_body_chars); the longest real body in
# the bundled data is ~38k characters. Part of the analyzer (training and serving must cut alike), so it stays put
# when an operator raises the API's limit: the rest of a longer body is not read.
MAX_BODY_CHARS = 60_000
# Keep at most this much code per question: enough for imports and API names, not whole files.
MAX_CODE_CHARS = 2_000
MAX_TEXT_CHARS = 6_000
_MAX_TITLE_TEXT = 500  # characters of a cleaned title

# Placeholders that one source put in place of code and numbers; they carry the source, not the topic.
_PLACEHOLDERS = re.compile(r"\b(?:has_codeblock|has_numeric|has_link|has_hexadecimal|has_homework)\b")
# HTML elements (content in group 1), or (no group) a start tag whose end tag never comes; see _take_elements.
_PRE = re.compile(r"<pre[^>]*>(.*?)</pre>|<pre[^>]*+", re.S | re.I)
_CODE = re.compile(r"<code[^>]*>(.*?)</code>|<code[^>]*+", re.S | re.I)
# Greedy: matches up to the end of the last end tag.
_UP_TO_LAST_PRE_END = re.compile(r".*</pre>", re.S | re.I)
_UP_TO_LAST_CODE_END = re.compile(r".*</code>", re.S | re.I)
# Only ever run up to the last ">" of a text (see _strip_tags).
_HTML_TAG = re.compile(r"<[^>]+>")
# The lookahead on the first letters saves trying 16 names at each of thousands of "<" (10x faster on "</" * 30k).
_HTML_HINT_START = re.compile(
    r"</?(?=[abcdehilopsu])(?:p|pre|code|a|br|strong|em|ul|ol|li|blockquote|h\d|img|hr|div|span)\b", re.I
)
# A link, its host in group 1: the target host is a topic hint (developer.android.com, docs.python.org,
# jsfiddle.net); its path is not. Or (no group) a "<a " that opens no link, up to its ">", when another "<a " comes
# before that ">"; see _links_to_hosts.
_HTML_LINK = re.compile(r"<a\s[^>]*?href\s*=\s*[\"']https?://([^/\"'\s>]+)[^>]*>|<a\s(?=[^>]*?<a\s)[^>]*+", re.I)
# Markdown fences: a line whose first non-blank characters are ``` or ~~~. Anchored at line starts and never crossing
# a newline, so a try costs at most its own line. An opening fence needs a newline after it; a closing one has
# nothing but blanks after the marker on its line.
_FENCE_OPEN = {
    "```~~~": re.compile(r"^[^\S\n]*(```|~~~)[^\n]*\n", re.M),
    "```": re.compile(r"^[^\S\n]*(```)[^\n]*\n", re.M),
    "~~~": re.compile(r"^[^\S\n]*(~~~)[^\n]*\n", re.M),
}
_FENCE_CLOSE = {
    "```": re.compile(r"^[^\S\n]*(```)[^\S\n]*$", re.M),
    "~~~": re.compile(r"^[^\S\n]*(~~~)[^\S\n]*$", re.M),
}
_NOT_BLANK = re.compile(r"\S")
# Linear as they are: a failed try of inline code stops at the next newline or backtick, where the next try starts;
# indented runs are anchored at line starts; a URL try fails within its first characters or takes the whole word.
_MD_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_MD_INDENTED = re.compile(r"(?:^(?: {4}|\t)[^\n]*\n?)+", re.M)
_URL = re.compile(r"https?://([^/\s\"'<>()\[\]]+)\S*")
# A Markdown link (its text in group 1), or (no group) a "[" that opens none, up to the next "]"; see
# _md_links_to_text.
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|\[[^\]]*+")
# A character reference, as html.unescape finds them (Lib/html/__init__.py); see _unescape.
_CHARREF = re.compile(r"(&#[0-9]+;?|&#[xX][0-9a-fA-F]+;?|&[^\t\n\f <&#;]{1,32};?)")
_CACHED_REF_CHARS = 40  # longer ones (numeric only: names are at most 32 characters) are decoded each time
_SPACE = re.compile(r"\s+")
# Model tokens: words, with the dots, dashes and suffixes that make up technology names (c#, c++, .net, node.js,
# asp.net-mvc, python-3.x), which a plain ``\w\w+`` pattern would cut into noise (``c``, ``net``, ``js``).
_TOKEN = re.compile(r"\.?\w+(?:[-.]\w+)*(?:\+\+|#)?")


class HasText(Protocol):
    """Anything with a question's text: ``tagwatch.data.Question``, ``TextInput``."""

    @property
    def title(self) -> str: ...

    @property
    def body(self) -> str: ...

    @property
    def body_format(self) -> str | None: ...


class TextInput(NamedTuple):
    """A question as the API receives it: the body's format is detected."""

    title: str
    body: str
    body_format: str | None = None


@dataclass(frozen=True, slots=True)
class CleanBody:
    text: str  # prose, without code
    code: str  # code blocks and inline code, joined

    @property
    def code_share(self) -> float:
        total = len(self.text) + len(self.code)
        return len(self.code) / total if total else 0.0


def detect_format(body: str) -> BodyFormat:
    """Guess the format of a body that came without one (e.g. through the API)."""
    if not body.strip():
        return "none"
    if _has_html_tag(body):
        return "html"
    if "```" in body or "~~~" in body or (_MD_INDENTED.search(body) and "\n" in body):
        return "markdown"
    return "text"


def _has_html_tag(body: str) -> bool:
    """Whether ``</?(?:p|pre|…)\\b[^>]*>`` (re.I) occurs: a known tag name with some ">" after it."""
    hint = _HTML_HINT_START.search(body)
    # If the first tag name has no ">" after it, no later one has: no need to try them all.
    return hint is not None and body.find(">", hint.end()) >= 0


# --- each gives what one of the old regexes gave with re.sub, without the tries that read to the end -------------


def _strip_tags(s: str) -> str:
    """``<[^>]+>`` replaced by a space.

    A tag ends at a ">", so none starts after the last one; there each "<" made the regex read to the end of the
    text. Before it, a try either matches up to the next ">" or fails at once (on "<>").
    """
    end = s.rfind(">") + 1
    if end == len(s):
        return _HTML_TAG.sub(" ", s)
    return _HTML_TAG.sub(" ", s[:end]) + s[end:]


def _take_elements(
    s: str, element: re.Pattern[str], up_to_last_end_tag: re.Pattern[str], keep: Callable[[str], str]
) -> str:
    """``<name[^>]*>(.*?)</name>`` (re.S | re.I) replaced by ``keep(content)``.

    The regex read to the end of the text from every start tag that had no end tag after it. None has after the
    last end tag, so the regex runs only up to there. There the only start tags that fail are those whose ">" is
    the last end tag's: ``element``'s second branch takes them all at once (up to that ">") and puts them back.
    """
    last = up_to_last_end_tag.match(s)
    if last is None:
        return s
    end = last.end()
    return element.sub(lambda m: m[0] if m[1] is None else keep(m[1]), s[:end]) + s[end:]


def _links_to_hosts(s: str) -> str:
    """``<a\\s[^>]*?href\\s*=\\s*["']https?://([^/"'\\s>]+)[^>]*>`` (re.I) replaced by `` host ``.

    A link ends at a ">": the regex runs only up to the last one (past it, a long host made it backtrack over the
    rest of the text once per character). It read from every "<a " to the next ">", from each of a run of them to
    the same ">"; when one fails, so does every "<a " before that ">" (they see the same attributes, or fewer):
    ``_HTML_LINK``'s second branch takes them all at once and puts them back.
    """
    end = s.rfind(">") + 1
    return _HTML_LINK.sub(lambda m: m[0] if m[1] is None else " " + m[1] + " ", s[:end]) + s[end:]


def _take_fences(s: str, code_parts: list[str]) -> str:
    """``^\\s*(```|~~~)[^\\n]*\\n(.*?)^\\s*\\1\\s*$`` (re.S | re.M) replaced by a newline, the code kept.

    The regex tried every line start, and from an opening fence without a closing one (or across a long run of
    blank lines) read to the end. Here the next fence line is found, then its closing line; once a kind of fence
    has no closing line, no later fence of that kind can close either, and only the other kind is looked for.
    """
    out: list[str] = []
    done = at = 0
    kinds = "```~~~"
    while (opening := _FENCE_OPEN[kinds].search(s, at)) is not None:
        marker, code_start = opening[1], opening.end()
        closing = _FENCE_CLOSE[marker].search(s, code_start)
        if closing is None:
            if kinds != "```~~~":
                break
            kinds = "~~~" if marker == "```" else "```"
            at = code_start
            continue
        # ^\s* lets a fence take the blank lines before it, from the first line start the regex got to.
        out += [s[done : _blank_lines_before(s, at, opening.start())], "\n"]
        code_parts.append(s[code_start : _blank_lines_before(s, code_start, closing.start())])
        done = at = _fence_end(s, closing.end())
    out.append(s[done:])
    return "".join(out)


def _blank_lines_before(s: str, lo: int, line: int) -> int:
    """The first line start at or after ``lo`` with only whitespace between it and ``line`` (a line start)."""
    if line == lo or (line - 2 >= lo and not s[line - 2].isspace()):
        return line  # no line before, or it has text (the usual cases)
    text_end = lo + len(s[lo:line].rstrip())
    if text_end == lo and (lo == 0 or s[lo - 1] == "\n"):
        return lo
    return s.find("\n", text_end) + 1


def _fence_end(s: str, line_end: int) -> int:
    """Where ``\\s*$`` after a closing marker ends, from the end of its line (``line_end``): at the end of the
    text, or before the last newline of the whitespace that follows (blank lines after a fence belong to it)."""
    if line_end + 1 < len(s) and not s[line_end + 1].isspace():
        return line_end  # the next line has text (the usual case)
    text = _NOT_BLANK.search(s, line_end)
    return len(s) if text is None else s.rfind("\n", line_end, text.start())


def _md_links_to_text(s: str) -> str:
    """``!?\\[([^\\]]*)\\]\\([^)]*\\)`` replaced by the link's text.

    A link ends at a ")", so none starts after the last one: the regex runs only up to there, where every "]("
    has a ")" after it. A "[" that still opens no link fails at the first "]" after it, and so does every "[" before
    that "]": ``_MD_LINK``'s second branch takes them all at once and puts them back unchanged.
    """
    end = s.rfind(")") + 1
    return _MD_LINK.sub(lambda m: m[0] if m[1] is None else m[1], s[:end]) + s[end:]


def _unescape(s: str) -> str:
    """``html.unescape``, faster on bodies made of thousands of references, and safe on long numeric ones.

    The references are found with html.unescape's own pattern and each is decoded by html.unescape alone, so the
    result is the same; short ones through a cache, without a Python call per match: html.unescape spent 13 ms on
    "&nbspx" * 8,500 (a dictionary search per prefix of each reference).
    """
    if "&" not in s:
        return s
    pieces = _CHARREF.split(s)  # text, reference, text, reference, ..., text
    pieces[1::2] = [_decode_ref(r) if len(r) <= _CACHED_REF_CHARS else _decode_long_ref(r) for r in pieces[1::2]]
    return "".join(pieces)


@functools.lru_cache(maxsize=1024)
def _decode_ref(ref: str) -> str:
    return html.unescape(ref)


def _decode_long_ref(ref: str) -> str:
    # html.unescape reads "&#<digits>" with int(), which raises ValueError past 4,300 digits. With more than 7
    # significant digits the number is above U+10FFFF, which html.unescape decodes as U+FFFD.
    if ref[2] in "xX":
        return html.unescape(ref)  # int(digits, 16) has no such limit
    digits = ref[2:].rstrip(";").lstrip("0")
    return "\ufffd" if len(digits) > 7 else html.unescape(f"&#{digits or 0};")


# --- the formats -----------------------------------------------------------------------------------------------


def _squash(s: str, limit: int) -> str:
    return _SPACE.sub(" ", s).strip()[:limit]


def _prose(text: str) -> str:
    """Final prose: URLs reduced to their host, source placeholders dropped, whitespace squashed, capped."""
    text = " ".join(_URL.split(text))  # text, host, text, host, ..., text
    return _squash(_PLACEHOLDERS.sub(" ", text), MAX_TEXT_CHARS)


def _code_text(code: str) -> str:
    """The text of an HTML code element: tags inside it (<span>, <b>) removed, entities decoded."""
    # The checks skip two calls per element, which add up in a body of thousands of tiny elements.
    if "<" in code:
        code = _strip_tags(code)
    return _unescape(code) if "&" in code else code


def _clean_html(body: str) -> CleanBody:
    code_parts: list[str] = []

    def keep_block(code: str) -> str:
        code_parts.append(_code_text(code))
        return " "

    def keep_inline(code: str) -> str:
        code_parts.append(_code_text(code))
        # Inline code is usually a name that belongs to the sentence (``df.groupby``): keep it in the prose too.
        return " " + code_parts[-1] + " "

    rest = _take_elements(body, _PRE, _UP_TO_LAST_PRE_END, keep_block)
    rest = _take_elements(rest, _CODE, _UP_TO_LAST_CODE_END, keep_inline)
    text = _unescape(_strip_tags(_links_to_hosts(rest)))
    return CleanBody(_prose(text), _squash(" ".join(code_parts), MAX_CODE_CHARS))


def _clean_markdown(body: str) -> CleanBody:
    # Markdown from the SE API is still entity-escaped (&#39;, &lt;).
    body = _unescape(body)
    code_parts: list[str] = []
    rest = _take_fences(body, code_parts)
    code_parts += _MD_INDENTED.findall(rest)
    rest = _MD_INDENTED.sub("\n", rest)
    # Inline code is usually a name that belongs to the sentence: kept in the prose too, between spaces.
    pieces = _MD_INLINE_CODE.split(rest)  # prose, code, prose, code, ..., prose
    code_parts += pieces[1::2]
    rest = " ".join(pieces)
    # Stray HTML inside Markdown (<br>, <kbd>) is markup, not content.
    rest = _strip_tags(_md_links_to_text(rest))
    return CleanBody(_prose(rest), _squash(" ".join(code_parts), MAX_CODE_CHARS))


def clean_body(body: str, body_format: str | None = None) -> CleanBody:
    """Split a body into prose and code, whatever its format (detected when not given or unknown)."""
    body = body[:MAX_BODY_CHARS]
    if not body or not body.strip():
        return CleanBody("", "")
    fmt = body_format if body_format in BODY_FORMATS else detect_format(body)
    if fmt == "none":
        # "none" promises an empty body; a body that came anyway is read as what it looks like.
        fmt = detect_format(body)
    if fmt == "html":
        return _clean_html(body)
    if fmt == "markdown":
        return _clean_markdown(body)
    # Plain text: HTML already stripped by the source, no code markup left to find.
    return CleanBody(_prose(_unescape(body)), "")


def clean_title(title: str) -> str:
    """A title as model text: entities decoded, whitespace squashed, capped at 500 characters."""
    return _squash(_unescape(title[:MAX_BODY_CHARS]), _MAX_TITLE_TEXT)


def model_texts(item: HasText) -> tuple[str, str]:
    """(title, body) as the model reads them; the body is prose followed by code."""
    cleaned = clean_body(item.body, item.body_format)
    body = f"{cleaned.text} {cleaned.code}" if cleaned.code else cleaned.text
    return clean_title(item.title), body


def tokenize(text: str) -> list[str]:
    """Lower-cased model tokens that keep names such as ``c#``, ``c++``, ``.net``, ``node.js``, ``asp.net``."""
    return _TOKEN.findall(text.lower())


def word_features(text: str) -> list[str]:
    """The word terms of a text: tokens, adjacent token pairs, and the parts of dotted names.

    Dotted names are kept whole (``node.js``, ``df.groupby``) and also split (``node``, ``js``; ``df``, ``groupby``)
    so that code such as ``pd.read_csv`` shares terms with prose that says ``read_csv``.
    """
    tokens = _TOKEN.findall(text.lower())
    terms = tokens + list(map(" ".join, pairwise(tokens)))
    # A token can start with one dot (.net); a dot after its first character joins parts of a name.
    for token in [t for t in tokens if "." in t[1:]]:
        terms.extend(part for part in token.lstrip(".").split(".") if part)
    return terms
