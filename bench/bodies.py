"""Hostile request bodies: hand-made shapes at the API's maximum size, and a hypothesis strategy of small bodies made of
markup fragments. bench/hostile.py times the text preparation on them; tests/tagwatch/test_text.py checks on the
strategy's bodies that the text preparation gives the legacy implementation's output (bench/legacy_text.py).

hypothesis (a development dependency) is imported only when a strategy is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagwatch.text import MAX_BODY_CHARS

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

TITLE_CHARS = 300  # the API's limit on a title
GENERATED = 40  # hypothesis-generated bodies

# Pieces of markup that hostile and odd bodies are made of: tags closed, unclosed and in mixed case, links, fences,
# indentation, entities (two decimal references of 8 and more digits, which _unescape handles itself), characters
# that fold to ASCII letters under re.IGNORECASE (ſ, K, İ, ı) and whitespace that only Unicode calls whitespace.
FRAGMENTS = (
    *("<pre>", '<pre class="lang-py">', "</pre>", "</PRE>", "<PRE", "<pre", "<code>", "</code>", "<CoDe>", "<code"),
    *("<p ", "<p>", "</p>", "<P>", "<br>", "<h2 id=x>", "<h٣>", "<span>", "<li", "<", ">", "<>", "</", "‹"),
    *('<a href="http://h.com/x">', "<a href='https://ex.org'>", "<a ", "<A\n", "href=", 'href = "', "<a title=x>"),
    *("http://", "https://", "http://a.b/c", "httpſ://x", "www.x.org", "[", "]", "(", ")", "](", "[x](y", "![a](b)"),
    *("`", "``", "```", "~~~", "````", "```py", " ```", "\n", "\n\n", "    ", "\t", " ", "\r", "\x0b", "\x1c"),
    *("\u2028", "\u00a0", "\x85", "&amp;", "&#39;", "&lt;", "&gt;", "&#x41;", "&#00000038;", "&#123456789;", "&"),
    *("&#", "&nbsp", "é", "ſ", "K", "İ", "ı", "x", "has_link", "word", "print(1)", "0", "!"),
)


def hostile_bodies(max_fragments: int = 60) -> SearchStrategy[str]:
    """Bodies made of ``FRAGMENTS`` and a little random text (at most ~1,500 characters)."""
    from hypothesis import strategies as st

    piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4))
    return st.lists(piece, max_size=max_fragments).map("".join)


# family -> shape name -> (prefix, unit repeated to fill the body, suffix). A "<p>" or "```" prefix makes the API's
# format detection pick the path the shape attacks.
SHAPES: dict[str, dict[str, tuple[str, str, str]]] = {
    "html <pre>": {
        "<pre> unclosed": ("", "<pre>", ""),
        "<pre without >": ("", "<pre", ""),
        "<PRE class=…> unclosed": ("", "<PRE class='lang-py'>", ""),
        "<pre> then <": ("<pre>", "<", ""),
        "<pre> then <, closed": ("<pre>", "<", "</pre>"),
        "<pre><pre>x</pre> nested": ("", "<pre><pre>x</pre>", ""),
        "<pre>x</pre> closed": ("", "<pre>x</pre>", ""),
        "</pre> only": ("<p>", "</pre>", ""),
        "<PrE> mixed case": ("", "<PrE>", ""),
    },
    "html <code>": {
        "<code> unclosed": ("", "<code>", ""),
        "<code without >": ("", "<code", ""),
        "<code> then <": ("<code>", "<", ""),
        "<code>x</code> closed": ("", "<code>x</code>", ""),
        "<pre></code><code></pre > mismatched": ("", "<pre></code><code></pre >", ""),
        "<pre><code><p> nested unclosed": ("", "<pre><code><p>", ""),
        "<CODE> mixed case": ("", "<CODE>", ""),
    },
    "html tags": {
        "<p> then <": ("<p>", "<", ""),
        "<p> then ‹ (U+2039)": ("<p>", "‹", ""),
        "<p> then <‹": ("<p>", "<‹", ""),
        "<p ": ("", "<p ", ""),
        "</p ": ("", "</p ", ""),
        "<P\\t": ("", "<P\t", ""),
        "<h1 ": ("", "<h1 ", ""),
        "<>": ("<p>", "<>", ""),
        "<<>": ("<p>", "<<>", ""),
        "</": ("<p>", "</", ""),
        "<p> closed": ("", "<p>x</p>", ""),
    },
    "html links": {
        "<a ": ("<p>", "<a ", ""),
        "<a  then >": ("<p>", "<a ", ">"),
        "<a > closed, no href": ("<p>", "<a >", ""),
        "<a href='/relative'>": ("<p>", "<a href='/relative'>", ""),
        "<a  long attributes, href last": ("<p><a ", " title=x", ' href="http://x.org">'),
        "<a  long attributes, no href": ("<p><a ", " data-x='y'", ">"),
        '<a href="http://': ("<p>", '<a href="http://', ""),
        "<a href=…> closed": ("<p>", "<a href='https://x.org/'>", ""),
        "60k-character host": ('<p><a href="http://', "a", '">'),
        "60k-character host, no >": ('<p><a href="http://', "a", ""),
        "<A\\thref=": ("<p>", "<A\thref=", ""),
    },
    "entities": {
        "&": ("<p>", "&", ""),
        "&amp;": ("<p>", "&amp;", ""),
        "&#": ("<p>", "&#", ""),
        "&#<60k digits>": ("<p>&#", "1", ";"),
        "&#x<60k hex digits>": ("<p>&#x", "f", ";"),
        "&<32 letters>": ("<p>", "&" + "a" * 32, ""),
        "&a (30,000 references)": ("<p>", "&a", ""),
        "&nbspx (legacy name, no ;)": ("<p>", "&nbspx", ""),
        "&lt; in HTML": ("<p>", "&lt;", ""),
        "&lt; in Markdown": ("```\n", "&lt;", ""),
    },
    "markdown fences": {
        "```\\n": ("", "```\n", ""),
        "```x\\n unclosed": ("", "```x\n", ""),
        "```x ~~~y alternating": ("", "```x\n~~~y\n", ""),
        "````\\n": ("", "````\n", ""),
        "indented ``` and blank": ("", "   ```\n \n", ""),
        "``` then newlines": ("```\n", "\n", "x"),
        "``` then blank lines": ("```\n", "    \n", "x"),
        "blank lines then x": ("", "    \n", "x"),
        "``` then spaces": ("```\n", " ", "x"),
    },
    "markdown indented": {
        "4-space lines": ("```\n", "    x = 1\n", ""),
        "tab lines": ("```\n", "\tx\n", ""),
        "spaces, one line": ("```\n", "    ", ""),
        "indented and not": ("```\n", "    a\nb\n", ""),
    },
    "markdown inline code": {
        "`": ("```\n", "`", ""),
        "`a": ("```\n", "`a", ""),
        "``a": ("```\n", "``a", ""),
        "`a\\n": ("```\n", "`a\n", ""),
    },
    "markdown links": {
        "[": ("```\n", "[", ""),
        "[x](": ("```\n", "[x](", ""),
        "[]](": ("```\n", "[]](", ""),
        "![x](": ("```\n", "![x](", ""),
        "[x](y": ("```\n", "[x](y", ""),
        "](": ("```\n[", "](", ""),
        "[ … ](x)": ("```\n", "[", "](x)"),
        "[x](y) closed": ("```\n", "[x](y)", ""),
    },
    "urls": {
        "http://": ("<p>", "http://", ""),
        "https:// ": ("<p>", "https:// ", ""),
        "http://a": ("<p>", "http://a", ""),
        "http:// + 60k host": ("<p>http://", "a", ""),
        "http:// in Markdown": ("```\n", "http://", ""),
    },
    "whitespace and non-ASCII": {
        "spaces": ("<p>", " ", "x"),
        "newlines": ("<p>", "\n", "x"),
        "newlines, text": ("x", "\n", "x"),
        "é": ("<p>", "é", ""),
        "ſ K İ ı (fold to ASCII)": ("<p>", "ſKİı", ""),
        "U+2028 U+00A0 U+0085": ("<p>", "\u2028\u00a0\u0085", "x"),
        "CJK": ("```\n", "漢字", ""),
        "plain words": ("", "word ", ""),
    },
}


@dataclass
class Body:
    family: str
    name: str
    title: str
    body: str
    detected: str = ""
    new_ms: dict[str, float] = field(default_factory=dict)  # body format (or "detected") -> best time
    legacy_s: float | None = None  # as the API sees it; None: not run
    legacy_error: str | None = None

    @property
    def worst_ms(self) -> float:
        return max(self.new_ms.values())


def fill_body(prefix: str, unit: str, suffix: str, size: int = MAX_BODY_CHARS) -> str:
    room = size - len(prefix) - len(suffix)
    return prefix + (unit * (room // len(unit) + 1))[:room] + suffix


def hostile_title(unit: str) -> str:
    # A title as hostile as the body, but never blank (the API refuses those).
    return ("Why " + unit * TITLE_CHARS)[:TITLE_CHARS]


def hostile_corpus() -> list[Body]:
    bodies = [
        Body(family, name, hostile_title(unit), fill_body(prefix, unit, suffix))
        for family, shapes in SHAPES.items()
        for name, (prefix, unit, suffix) in shapes.items()
    ]
    for i, body in enumerate(generated_bodies(GENERATED)):
        bodies.append(Body("hypothesis, grown", f"generated #{i}", hostile_title(body), fill_body("", body, "")))
    return bodies


def generated_bodies(n: int) -> list[str]:
    """``n`` bodies from the ``hostile_bodies`` strategy (seeded), without the empty ones."""
    from hypothesis import Phase, given, settings

    found: list[str] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate])
    @given(hostile_bodies())
    def collect(body: str) -> None:
        if body.strip():
            found.append(body)

    collect()
    return found
