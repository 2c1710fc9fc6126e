"""Reference: tagwatch/text.py as it was up to main at 604d312, verbatim but for this docstring.

Only for the benchmark (bench/hostile.py) and tests/tagwatch/test_text.py: the new module must give the same model
text on every body this one cleans in reasonable time. Its regexes backtrack quadratically over hostile bodies: never
call it on those outside a benchmark.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal, NamedTuple, Protocol

BodyFormat = Literal["html", "markdown", "text", "none"]
BODY_FORMATS: tuple[str, ...] = ("html", "markdown", "text", "none")

# Placeholders that one source put in place of code and numbers; they carry the source, not the topic.
_PLACEHOLDERS = re.compile(r"\b(?:has_codeblock|has_numeric|has_link|has_hexadecimal|has_homework)\b")
_HTML_CODE_BLOCK = re.compile(r"<pre[^>]*>(.*?)</pre>", re.S | re.I)
_HTML_INLINE_CODE = re.compile(r"<code[^>]*>(.*?)</code>", re.S | re.I)
_HTML_TAG = re.compile(r"<[^>]+>")
_HTML_HINT = re.compile(r"</?(?:p|pre|code|a|br|strong|em|ul|ol|li|blockquote|h\d|img|hr|div|span)\b[^>]*>", re.I)
_MD_FENCE = re.compile(r"^\s*(```|~~~)[^\n]*\n(.*?)^\s*\1\s*$", re.S | re.M)
_MD_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_MD_INDENTED = re.compile(r"(?:^(?: {4}|\t)[^\n]*\n?)+", re.M)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://([^/\s\"'<>()\[\]]+)\S*")
# A link's target host is a topic hint (developer.android.com, docs.python.org, jsfiddle.net); its path is not.
_HTML_LINK = re.compile(r"<a\s[^>]*?href\s*=\s*[\"']https?://([^/\"'\s>]+)[^>]*>", re.I)
_SPACE = re.compile(r"\s+")
# Model tokens: words, with the dots, dashes and suffixes that make up technology names (c#, c++, .net, node.js,
# asp.net-mvc, python-3.x), which a plain ``\w\w+`` pattern would cut into noise (``c``, ``net``, ``js``).
_TOKEN = re.compile(r"\.?\w+(?:[-.]\w+)*(?:\+\+|#)?")

# Keep at most this much code per question: enough for imports and API names, not whole files.
MAX_CODE_CHARS = 2_000
MAX_TEXT_CHARS = 6_000


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
    if _HTML_HINT.search(body):
        return "html"
    if "```" in body or "~~~" in body or (_MD_INDENTED.search(body) and "\n" in body):
        return "markdown"
    return "text"


def _squash(s: str, limit: int) -> str:
    return _SPACE.sub(" ", s).strip()[:limit]


def _prose(text: str) -> str:
    """Final prose: URLs reduced to their host, source placeholders dropped, whitespace squashed, capped."""
    text = _URL.sub(lambda m: " " + m.group(1) + " ", text)
    return _squash(_PLACEHOLDERS.sub(" ", text), MAX_TEXT_CHARS)


def _clean_html(body: str) -> CleanBody:
    code_parts: list[str] = []

    def keep_block(m: re.Match[str]) -> str:
        code_parts.append(html.unescape(_HTML_TAG.sub(" ", m.group(1))))
        return " "

    def keep_inline(m: re.Match[str]) -> str:
        code_parts.append(html.unescape(_HTML_TAG.sub(" ", m.group(1))))
        # Inline code is usually a name that belongs to the sentence (``df.groupby``): keep it in the prose too.
        return " " + code_parts[-1] + " "

    rest = _HTML_CODE_BLOCK.sub(keep_block, body)
    rest = _HTML_INLINE_CODE.sub(keep_inline, rest)
    rest = _HTML_LINK.sub(lambda m: " " + m.group(1) + " ", rest)
    text = html.unescape(_HTML_TAG.sub(" ", rest))
    return CleanBody(_prose(text), _squash(" ".join(code_parts), MAX_CODE_CHARS))


def _clean_markdown(body: str) -> CleanBody:
    # Markdown from the SE API is still entity-escaped (&#39;, &lt;).
    body = html.unescape(body)
    code_parts: list[str] = []

    def keep_block(m: re.Match[str]) -> str:
        code_parts.append(m.group(2))
        return "\n"

    rest = _MD_FENCE.sub(keep_block, body)
    rest = _MD_INDENTED.sub(lambda m: keep_block_indented(m, code_parts), rest)

    def keep_inline(m: re.Match[str]) -> str:
        code_parts.append(m.group(1))
        return " " + m.group(1) + " "

    rest = _MD_INLINE_CODE.sub(keep_inline, rest)
    rest = _MD_LINK.sub(r"\1", rest)
    # Stray HTML inside Markdown (<br>, <kbd>) is markup, not content.
    rest = _HTML_TAG.sub(" ", rest)
    return CleanBody(_prose(rest), _squash(" ".join(code_parts), MAX_CODE_CHARS))


def keep_block_indented(m: re.Match[str], code_parts: list[str]) -> str:
    code_parts.append(m.group(0))
    return "\n"


def clean_body(body: str, body_format: str | None = None) -> CleanBody:
    """Split a body into prose and code, whatever its format (detected when not given or unknown)."""
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
    return CleanBody(_prose(html.unescape(body)), "")


def clean_title(title: str) -> str:
    """A title as model text: entities decoded, whitespace squashed, capped at 500 characters."""
    return _squash(html.unescape(title), 500)


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
