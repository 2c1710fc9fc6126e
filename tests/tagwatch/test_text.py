from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import legacy_text
from bench.bodies import hostile_bodies
from tagwatch.data import Question
from tagwatch.text import (
    MAX_BODY_CHARS,
    MAX_CODE_CHARS,
    MAX_TEXT_CHARS,
    CleanBody,
    TextInput,
    clean_body,
    clean_title,
    detect_format,
    model_texts,
    tokenize,
    word_features,
)

HTML_BODY = (
    "<p>How do I sum a column with <code>df.groupby</code> &amp; keep the index?</p>\n"
    '<pre class="lang-py prettyprint-override"><code>import pandas as pd\n'
    "df = pd.DataFrame({&quot;a&quot;: [1, 2]})\n"
    "if x &lt; 3: print(x)\n"
    "</code></pre>\n"
    '<p>See <a href="https://pandas.pydata.org/docs/reference/groupby.html">the docs</a> and '
    "https://stackoverflow.com/q/123 for more.</p>"
)


def test_html_body_keeps_code_apart_and_decodes_entities() -> None:
    cleaned = clean_body(HTML_BODY, "html")
    assert "import pandas as pd" in cleaned.code
    assert 'pd.DataFrame({"a": [1, 2]})' in cleaned.code
    assert "if x < 3: print(x)" in cleaned.code
    # Block code is not in the prose; inline code is in both.
    assert "import pandas" not in cleaned.text
    assert "df.groupby" in cleaned.text
    assert "df.groupby" in cleaned.code
    assert "&amp;" not in cleaned.text
    assert " & " in cleaned.text
    assert "<" not in cleaned.text
    assert "<p>" not in cleaned.code


def test_urls_and_links_are_reduced_to_their_host() -> None:
    text = clean_body(HTML_BODY, "html").text
    assert "pandas.pydata.org" in text  # from the link target
    assert "stackoverflow.com" in text
    assert "/docs/reference" not in text
    assert "q/123" not in text
    assert "https" not in text


def test_markdown_body_code_fences_inline_code_links_and_entities() -> None:
    body = (
        "I run `df.filter(pl.col(&quot;a&quot;) &gt; 1)` in [polars](https://docs.pola.rs/api/) like this:\n\n"
        "```python\nimport polars as pl\nprint(&#39;hi&#39;)\n```\n\n"
        "and get an error.<br>\n\n"
        "    indented_code()\n"
    )
    cleaned = clean_body(body, "markdown")
    assert "import polars as pl" in cleaned.code
    assert "print('hi')" in cleaned.code
    assert "indented_code()" in cleaned.code
    assert 'df.filter(pl.col("a") > 1)' in cleaned.text  # inline code stays in the sentence
    assert "polars" in cleaned.text
    assert "docs.pola.rs" not in cleaned.text
    assert "import polars" not in cleaned.text
    assert "<br>" not in cleaned.text
    assert "&#39;" not in cleaned.code


def test_text_body_drops_source_placeholders_and_decodes_entities() -> None:
    body = "My loop has_codeblock fails with has_numeric items &amp; has_link shows nothing"
    cleaned = clean_body(body, "text")
    assert cleaned.code == ""
    assert cleaned.text == "My loop fails with items & shows nothing"


def test_empty_and_whitespace_bodies_are_empty() -> None:
    assert clean_body("", "html").text == ""
    assert clean_body("  \n ", None).code == ""


def test_unknown_or_wrong_format_is_detected() -> None:
    assert clean_body("<p>hello <code>x()</code></p>", None).code == "x()"
    assert clean_body("<p>hello <code>x()</code></p>", "bogus").code == "x()"
    # "none" promises no body; a body that came anyway is still read.
    assert clean_body("<p>hi</p><pre>code()</pre>", "none").code == "code()"


def test_detect_format() -> None:
    assert detect_format("") == "none"
    assert detect_format("<p>Hi</p>") == "html"
    assert detect_format("text\n```\ncode\n```") == "markdown"
    assert detect_format("just words here") == "text"


def test_code_is_capped() -> None:
    body = "<pre><code>" + "x = 1\n" * 2000 + "</code></pre>"
    assert len(clean_body(body, "html").code) == MAX_CODE_CHARS


def test_clean_title_decodes_and_squashes() -> None:
    assert clean_title("  Why does   &quot;x&quot; fail?\n") == 'Why does "x" fail?'


def test_tokenize_keeps_technology_names() -> None:
    tokens = tokenize("Using C#, C++ and .NET with Node.js, ASP.NET-MVC and Python-3.x; also R.")
    for name in ("c#", "c++", ".net", "node.js", "asp.net-mvc", "python-3.x", "r"):
        assert name in tokens
    assert "" not in tokens
    assert "." not in tokens


def test_word_features_have_tokens_pairs_and_name_parts() -> None:
    terms = word_features("use pd.read_csv in node.js")
    assert {"use", "pd.read_csv", "in", "node.js"} <= set(terms)
    assert {"use pd.read_csv", "pd.read_csv in", "in node.js"} <= set(terms)
    assert {"pd", "read_csv", "node", "js"} <= set(terms)
    # A leading dot is part of the name, not a separator.
    assert "net" not in word_features(".net core")


def test_model_texts_of_question_and_text_input() -> None:
    q = Question(
        id="1", created_at=None, title="Sum by group &amp; sort", body=HTML_BODY, body_format="html", tags=("pandas",)
    )
    title, body = model_texts(q)
    assert title == "Sum by group & sort"
    assert body.startswith("How do I sum a column")
    assert body.endswith(clean_body(HTML_BODY, "html").code)
    assert model_texts(TextInput(q.title, q.body)) == (title, body)  # format detected


@pytest.mark.parametrize("fmt", ["html", "markdown", "text"])
def test_bundled_bodies_of_every_format_clean_without_markup(fmt: str, bundled_questions: list[Question]) -> None:
    sample = [q for q in bundled_questions if q.body_format == fmt][:300]
    assert sample
    for q in sample:
        cleaned = clean_body(q.body, q.body_format)
        assert "</p>" not in cleaned.text
        assert "<pre" not in cleaned.text
        assert "&quot;" not in cleaned.text
        assert "&lt;" not in cleaned.code
        assert cleaned.text or cleaned.code or not q.body.strip()


# --- hostile input: the same model text as before, in time linear in the body ----------------------------------
# bench/legacy_text.py is the implementation these tests compare against: single regexes that backtracked
# quadratically over hostile bodies. Timing is measured by bench/hostile.py, never asserted here.

# hostile_bodies (bench/bodies.py): bodies made of pieces of markup, up to ~1,500 characters.
FORMATS = (None, "html", "markdown", "text", "none", "bogus")


def _texts(cleaned: CleanBody | legacy_text.CleanBody) -> tuple[str, str]:
    return cleaned.text, cleaned.code


@settings(max_examples=1000, derandomize=True, database=None, deadline=None)
@given(body=hostile_bodies(), body_format=st.sampled_from(FORMATS))
def test_same_cleaning_as_the_legacy_regexes(body: str, body_format: str | None) -> None:
    assert len(body) <= 2_000  # short enough for the legacy regexes to be quick
    assert _texts(clean_body(body, body_format)) == _texts(legacy_text.clean_body(body, body_format))
    assert detect_format(body) == legacy_text.detect_format(body)
    assert clean_title(body) == legacy_text.clean_title(body)


@settings(max_examples=25, derandomize=True, database=None, deadline=None)
@given(body=hostile_bodies().filter(bool), body_format=st.sampled_from(FORMATS))
def test_bodies_grown_past_the_limit_clean_within_the_caps(body: str, body_format: str | None) -> None:
    grown = body * (MAX_BODY_CHARS // len(body) + 2)
    cleaned = clean_body(grown, body_format)
    assert len(cleaned.text) <= MAX_TEXT_CHARS
    assert len(cleaned.code) <= MAX_CODE_CHARS
    # Only the first MAX_BODY_CHARS characters are read.
    assert cleaned == clean_body(grown[:MAX_BODY_CHARS], body_format)


def _at_limit(unit: str, prefix: str = "", suffix: str = "") -> str:
    """``prefix`` + ``unit`` repeated + ``suffix``: exactly MAX_BODY_CHARS characters."""
    room = MAX_BODY_CHARS - len(prefix) - len(suffix)
    return prefix + (unit * (room // len(unit) + 1))[:room] + suffix


HOSTILE_SHAPES = {
    "unclosed <pre>": _at_limit("<pre>"),
    "unclosed <code>": _at_limit("<code>"),
    "<pre without >": _at_limit("<PRE "),
    "<p  without >": _at_limit("<p "),
    "<p> and <": _at_limit("<", prefix="<p>"),
    "<p> and ‹": _at_limit("‹", prefix="<p>"),
    "<a  without href": _at_limit("<a ", suffix=">"),
    "<a  long attributes": _at_limit(" title=x", prefix="<a ", suffix=' href="http://x.org">'),
    "<a href= with an endless host": _at_limit("a", prefix='<p><a href="http://'),
    "nested unclosed tags": _at_limit("<pre><code><p>"),
    "mismatched tags": _at_limit("<pre></code><code></pre >"),
    "&": _at_limit("&"),
    "&#digits": _at_limit("1", prefix="<p>&#"),
    "backticks": _at_limit("`"),
    "unclosed fences": _at_limit("```x\n"),
    "alternating fences": _at_limit("```x\n~~~y\n"),
    "blank lines": _at_limit("    \n", suffix="x"),
    "fence then blank lines": _at_limit("\n", prefix="```\n", suffix="x"),
    "indented lines": _at_limit("    x = 1\n"),
    "[": _at_limit("["),
    "[x](": _at_limit("[x]("),
    "http:// without end": _at_limit("http://"),
    "non-ASCII": _at_limit("ſKİı é\u2028"),
}


@pytest.mark.parametrize("body_format", [None, "html", "markdown", "text"])
@pytest.mark.parametrize("body", HOSTILE_SHAPES.values(), ids=HOSTILE_SHAPES.keys())
def test_hostile_shapes_at_the_limit_clean_within_the_caps(body: str, body_format: str | None) -> None:
    assert len(body) == MAX_BODY_CHARS
    title, text = model_texts(TextInput("t" * 300, body, body_format))
    cleaned = clean_body(body, body_format)
    assert len(cleaned.text) <= MAX_TEXT_CHARS
    assert len(cleaned.code) <= MAX_CODE_CHARS
    assert text == (f"{cleaned.text} {cleaned.code}" if cleaned.code else cleaned.text)
    assert title == "t" * 300


def test_code_is_found_before_and_inside_hostile_runs() -> None:
    prose = "<p>How do I use <code>df.groupby</code>?</p><pre><code>import pandas as pd</code></pre>"
    for unit in ("<pre>", "<code>", "<p ", "<", "<a ", "&"):
        cleaned = clean_body(_at_limit(unit, prefix=prose), None)
        assert cleaned.code.startswith("import pandas as pd df.groupby"), unit
        assert cleaned.text.startswith("How do I use df.groupby ?"), unit
    # An unclosed run, then a closed element: the first start tag of the run opens it (as before).
    assert clean_body(_at_limit("<code>", suffix="f()</code>"), "html").code.endswith("f()")
    markdown = _at_limit("```x\n", prefix="Read `pd.read_csv` here:\n```py\nimport pandas\n```\n")
    cleaned = clean_body(markdown, None)
    assert cleaned.code.startswith("import pandas pd.read_csv")
    assert cleaned.text.startswith("Read pd.read_csv here:")


def test_the_body_cap_is_the_api_default_limit() -> None:
    from tagwatch.settings import Settings

    assert Settings.model_fields["max_body_chars"].default == MAX_BODY_CHARS


def test_decimal_references_too_long_for_int_decode_like_short_ones() -> None:
    # html.unescape raises ValueError past 4,300 digits (the legacy code did too): a 500 from the API.
    with pytest.raises(ValueError, match="4300"):
        legacy_text.clean_body("&#" + "1" * 5_000, "text")
    assert clean_body("a &#" + "1" * 5_000 + "; b", "text").text == "a \ufffd b"  # above U+10FFFF, as &#1114112;
    assert clean_body("a &#" + "0" * 5_000 + "65; b", "text").text == "a A b"
    assert clean_body("&#00000038;amp; &#0000000060;p>", "html").text == "&amp; <p>"  # decoded once, not twice


@pytest.mark.parametrize(
    ("body", "text", "code"),
    [
        # A fence that never closes is text; the other kind still closes.
        ("```\nunclosed\n~~~\ncode()\n~~~\nafter", "``` unclosed after", "code()"),
        ("text\n\n\n```py\nx = 1\n```\n\n\nmore", "text more", "x = 1"),
        # A link opens at the first "[" since the last "]"; "]" without "(" is no link.
        ("[[a](b) and ![img](c) [x]y](z)", "[a and img [x]y](z)", ""),
    ],
)
def test_markdown_edge_cases(body: str, text: str, code: str) -> None:
    assert _texts(clean_body(body, "markdown")) == (text, code)
    assert _texts(legacy_text.clean_body(body, "markdown")) == (text, code)


def test_html_links_keep_the_host_of_the_first_href() -> None:
    body = "<a title='x' href=\"https://docs.python.org/3/\">docs</a> <a name=x>y</a> <a href='/rel'>z</a>"
    assert clean_body(body, "html").text == "docs.python.org docs y z"


# A fixed sample of the bundled questions plus every one with an odd shape (all Markdown and plain-text bodies,
# unbalanced tags, references, fences, links): the whole set is compared by bench/hostile.py (~25 s).
SAMPLE_SIZE = 10_000


def _odd_shape(q: Question) -> bool:
    body, low = q.body, q.body.lower()
    return (
        q.body_format != "html"
        or low.count("<pre") != low.count("</pre>")
        or low.count("<code") != low.count("</code>")
        or low.count("<a ") != low.count("href=")
        or body.rfind("<") > body.rfind(">")
        or any(s in body for s in ("&#", "](", "```", "~~~"))
    )


def test_same_model_text_as_the_legacy_regexes_on_bundled_questions(bundled_questions: list[Question]) -> None:
    odd = [q for q in bundled_questions if _odd_shape(q)]
    rest = [q for q in bundled_questions if not _odd_shape(q)]
    sample = odd + random.Random(11).sample(rest, SAMPLE_SIZE)
    assert len(odd) > 5_000
    different = [q.id for q in sample if model_texts(q) != legacy_text.model_texts(q)]
    assert different == []
    assert [detect_format(q.body) for q in sample] == [legacy_text.detect_format(q.body) for q in sample]
