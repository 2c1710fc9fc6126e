from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tagwatch.data import Question
from tagwatch.model import ModelFormatError, TagModel
from tagwatch.scoring import decision_matrix
from tagwatch.text import TextInput, model_texts
from tests.tagwatch.model.support import sklearn_vectorizers

PANDAS_QUESTION = TextInput(
    "How to group a DataFrame by column and sum",
    "<p>I have a DataFrame and want the sum of <code>value</code> per <code>key</code>.</p>"
    "<pre><code>import pandas as pd\n"
    "df = pd.DataFrame({'key': ['a', 'b', 'a'], 'value': [1, 2, 3]})\n"
    "print(df.groupby('key').sum())\n</code></pre>",
)


@pytest.fixture(scope="module")
def unseen(bundled_questions: list[Question], small_training_set: list[Question]) -> list[Question]:
    """Bundled questions the small model was not trained on."""
    seen = {q.id for q in small_training_set}
    return [q for q in bundled_questions if q.id not in seen][::40][:500]


def test_scores_are_probabilities_per_tag(small_model: TagModel, unseen: list[Question]) -> None:
    scores = small_model.predict_scores(unseen[:50])
    assert scores.shape == (50, len(small_model.tags))
    assert np.all((scores >= 0) & (scores <= 1))
    assert small_model.predict_scores([]).shape == (0, len(small_model.tags))


def test_tags_are_ordered_by_training_frequency(small_model: TagModel, small_training_set: list[Question]) -> None:
    counts = [sum(t in q.tags for q in small_training_set) for t in small_model.tags]
    assert counts == sorted(counts, reverse=True)


def test_decide_at_most_k_sorted_none_only_below_the_minimum_top_score(
    small_model: TagModel, unseen: list[Question]
) -> None:
    scores = small_model.predict_scores(unseen)
    decided = small_model.decide(scores)
    assert len(decided) == len(unseen)
    for row, tags in zip(scores, decided, strict=True):
        assert len(tags) <= small_model.max_tags
        best = int(np.argmax(row))
        if not tags:  # only when the best tag reaches neither its threshold nor the minimum top score
            assert row[best] < max(small_model.min_top_score, small_model.thresholds[best])
            continue
        values = [s for _, s in tags]
        assert values == sorted(values, reverse=True)
        # The best tag comes first when it is suggested; every other suggested tag reaches its own threshold (with
        # per-tag thresholds a lower tag can reach its own while the best one reaches neither its own nor the
        # minimum top score).
        first = small_model.tags[best]
        others = tags[1:] if tags[0][0] == first else tags
        assert first not in [t for t, _ in others]
        for tag, s in others:
            assert s >= small_model.thresholds[small_model.tags.index(tag)]


def test_decide_matches_the_decision_matrix_rule(small_model: TagModel) -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((300, len(small_model.tags))) ** 3  # mostly low scores: the at-least-one rule matters
    scores[:5, :] = 0.5  # ties
    decided = small_model.decide(scores)
    matrix = decision_matrix(scores, small_model.thresholds, small_model.max_tags, small_model.min_top_score)
    for i, tags in enumerate(decided):
        assert {t for t, _ in tags} == {small_model.tags[j] for j in np.flatnonzero(matrix[i])}


def test_a_minimum_top_score_lets_a_question_get_no_tag(small_model: TagModel, tmp_path: Path) -> None:
    n = len(small_model.tags)
    low = np.full((1, n), 0.01)
    low[0, 3] = 0.04  # the best, below 0.05 and below every threshold
    high = low.copy()
    high[0, 3] = 0.06
    small_model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["min_top_score"] = 0.05
    meta_path.write_text(json.dumps(meta))
    strict = TagModel.load(tmp_path / "m")
    assert strict.min_top_score == 0.05
    assert strict.decide(low) == [[]]
    assert strict.decide(high) == [[(small_model.tags[3], 0.06)]]
    # A model saved before the rule had a minimum (no key) suggests its best tag always.
    del meta["min_top_score"]
    meta_path.write_text(json.dumps(meta))
    old = TagModel.load(tmp_path / "m")
    assert old.min_top_score == 0.0
    assert old.decide(low) == [[(small_model.tags[3], 0.04)]]


def test_decide_rejects_scores_of_another_shape(small_model: TagModel) -> None:
    with pytest.raises(ValueError, match="scores must be"):
        small_model.decide(np.zeros((2, len(small_model.tags) + 1)))


def test_predict_is_decide_of_predict_scores(small_model: TagModel, unseen: list[Question]) -> None:
    items = unseen[:20]
    assert small_model.predict(items) == small_model.decide(small_model.predict_scores(items))


def test_one_question_scores_the_same_alone_and_in_a_batch(small_model: TagModel, unseen: list[Question]) -> None:
    batch = small_model.predict_scores(unseen[:30])
    alone = np.vstack([small_model.predict_scores([q]) for q in unseen[:30]])
    assert np.array_equal(batch, alone)


def test_transform_is_sklearn_tfidf(small_model: TagModel, unseen: list[Question]) -> None:
    items = unseen[:100]
    x = small_model.transform(items)
    texts = [model_texts(q) for q in items]
    reference = sp.hstack(
        [
            vec.transform([t if block.field == "title" else b for t, b in texts]) * block.weight
            for block, vec in zip(small_model.features.blocks, sklearn_vectorizers(small_model), strict=True)
        ]
    ).tocsr()
    assert x.shape == (100, len(small_model.feature_names()))
    assert abs(x - reference).max() < 1e-12


def test_scores_are_calibrated_linear_scores(small_model: TagModel, unseen: list[Question]) -> None:
    x = small_model.transform(unseen[:50])
    expected = 1 / (
        1
        + np.exp(
            -((x @ small_model.weights.T).toarray() + small_model.bias) * small_model.calib_a - small_model.calib_b
        )
    )
    assert np.allclose(small_model.predict_scores(unseen[:50]), expected, rtol=0, atol=1e-12)


def test_save_load_round_trip_is_identical(small_model: TagModel, unseen: list[Question], tmp_path: Path) -> None:
    small_model.save(tmp_path / "m")
    loaded = TagModel.load(tmp_path / "m")
    assert loaded.tags == small_model.tags
    assert loaded.params == small_model.params
    assert loaded.max_tags == small_model.max_tags
    assert loaded.min_top_score == small_model.min_top_score
    assert np.array_equal(loaded.thresholds, small_model.thresholds)
    assert np.array_equal(loaded.predict_scores(unseen), small_model.predict_scores(unseen))
    assert loaded.predict(unseen[:50]) == small_model.predict(unseen[:50])
    assert np.array_equal(loaded.feature_names(), small_model.feature_names())
    assert loaded.top_features("python", 15) == small_model.top_features("python", 15)
    assert loaded.version is None
    # No pickle anywhere: every array file opens with allow_pickle=False.
    for f in (tmp_path / "m").glob("*.npz"):
        with np.load(f, allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)


def test_load_rejects_incomplete_or_foreign_directories(small_model: TagModel, tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="missing"):
        TagModel.load(tmp_path)
    small_model.save(tmp_path / "m")
    meta_file = tmp_path / "m" / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["analyzer_version"] = -1
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="analyzer"):
        TagModel.load(tmp_path / "m")
    meta["format_version"] = 99
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="format"):
        TagModel.load(tmp_path / "m")


def test_load_rejects_mismatched_arrays(small_model: TagModel, tmp_path: Path) -> None:
    small_model.save(tmp_path / "m")
    vocab_file = tmp_path / "m" / "vocabulary.json"
    vocab = json.loads(vocab_file.read_text())
    vocab["body_words"] = vocab["body_words"][:-1]
    vocab_file.write_text(json.dumps(vocab))
    with pytest.raises(ModelFormatError, match="body_words"):
        TagModel.load(tmp_path / "m")


def test_top_features_come_from_the_weights(small_model: TagModel) -> None:
    top = small_model.top_features("python", 10)
    assert len(top) == 10
    weights = [w for _, w in top]
    assert weights == sorted(weights, reverse=True)
    names = small_model.feature_names()
    j = small_model.tags.index("python")
    row = small_model.weights.getrow(j).toarray().ravel()
    assert weights[0] == pytest.approx(row.max())
    assert all(row[list(names).index(n)] == w for n, w in top[:3])
    # The strongest features of python name python things.
    assert any("python" in n or "pandas" in n or "numpy" in n for n, _ in top)
    with pytest.raises(KeyError):
        small_model.top_features("no-such-tag", 5)


def test_feature_names_are_prefixed_by_block(small_model: TagModel) -> None:
    names = small_model.feature_names()
    assert len(names) == small_model.features.n_features
    assert {n.split(":", 1)[0] for n in names} == {b.name for b in small_model.features.blocks}
    assert "title_words:python" in set(names)


def test_constructor_rejects_inconsistent_parts(small_model: TagModel) -> None:
    m = small_model
    with pytest.raises(ValueError, match="thresholds"):
        TagModel(
            tags=m.tags,
            features=m.features,
            weights=m.weights,
            bias=m.bias,
            calib_a=m.calib_a,
            calib_b=m.calib_b,
            thresholds=m.thresholds[:-1],
            max_tags=5,
        )
    with pytest.raises(ValueError, match="weights"):
        TagModel(
            tags=m.tags[:-1],
            features=m.features,
            weights=m.weights,
            bias=m.bias[:-1],
            calib_a=m.calib_a[:-1],
            calib_b=m.calib_b[:-1],
            thresholds=m.thresholds[:-1],
            max_tags=5,
        )


# --- behaviour ------------------------------------------------------------------------------------------------------
def test_a_pandas_question_gets_python_and_pandas(small_model: TagModel) -> None:
    tags = [t for t, _ in small_model.predict([PANDAS_QUESTION])[0]]
    assert "python" in tags
    assert "pandas" in tags


def test_an_irrelevant_sentence_does_not_change_a_clear_top_tag(small_model: TagModel, unseen: list[Question]) -> None:
    before = small_model.predict_scores(unseen)
    padded = [TextInput(q.title, q.body + "<p>Thanks in advance for any help!</p>", q.body_format) for q in unseen]
    after = small_model.predict_scores(padded)
    top2 = np.sort(before, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.1  # questions where the model has a clear favourite
    assert clear.sum() >= 100
    same = before.argmax(axis=1) == after.argmax(axis=1)
    assert same[clear].mean() >= 0.99
    pandas_padded = TextInput(PANDAS_QUESTION.title, PANDAS_QUESTION.body + "<p>Thanks in advance!</p>")
    assert small_model.predict([pandas_padded])[0][0][0] == small_model.predict([PANDAS_QUESTION])[0][0][0]


def test_the_title_matters(small_model: TagModel) -> None:
    body = "<p>It does not work, what am I doing wrong?</p>"
    java = small_model.predict([TextInput("NullPointerException in Java ArrayList loop", body)])[0]
    js = small_model.predict([TextInput("jQuery click handler not firing in JavaScript", body)])[0]
    assert java[0][0] == "java"
    assert {t for t, _ in js} & {"javascript", "jquery"}
