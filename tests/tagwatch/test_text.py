from __future__ import annotations

import pytest

from tagwatch.data import Question
from tagwatch.text import (
    MAX_CODE_CHARS,
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
