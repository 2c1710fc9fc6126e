"""How a model directory is laid out: JSON + ``.npz`` files, no pickle, format and analyzer versions checked on load.

A model directory can be loaded without running code from it. ``write`` and ``read`` move the parts of a model
between memory and files; ``tagwatch.model.TagModel.save``/``load`` decide what the parts are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tagwatch.model.features import ModelFormatError

FORMAT = "tagwatch.TagModel"
FORMAT_VERSION = 1
# Bump when tagwatch.text's cleaning or word_features change the terms a text yields: a model saved by an older
# version was fitted on other terms and would score silently worse, so loading it fails instead.
ANALYZER_VERSION = 2
MODEL_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.json"
ARRAYS_FILE = "arrays.npz"
WEIGHTS_FILE = "weights.npz"
FILES = (MODEL_FILE, VOCABULARY_FILE, ARRAYS_FILE, WEIGHTS_FILE)


@dataclass(frozen=True)
class SavedModel:
    """The parts of a model as stored: ``meta`` (model.json), the terms per block, the arrays, the weights."""

    meta: dict[str, Any]
    vocabularies: dict[str, list[str]]
    arrays: dict[str, np.ndarray]
    weights: sp.csr_matrix


def header() -> dict[str, Any]:
    """The format fields every model.json starts with."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "analyzer_version": ANALYZER_VERSION}


def write(directory: Path, saved: SavedModel) -> None:
    """Write the parts into ``directory`` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {**saved.meta, **header()}
    (directory / MODEL_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    (directory / VOCABULARY_FILE).write_text(json.dumps(saved.vocabularies, ensure_ascii=False), encoding="utf-8")
    np.savez_compressed(directory / ARRAYS_FILE, allow_pickle=False, **saved.arrays)
    sp.save_npz(directory / WEIGHTS_FILE, saved.weights, compressed=True)


def read(directory: Path) -> SavedModel:
    """The parts of a model directory; ``ModelFormatError`` if it is incomplete or of another format."""
    directory = Path(directory)
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise ModelFormatError(f"{directory} is not a saved TagModel: missing {missing}")
    try:
        meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{directory}: unreadable model files: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(
            f"{directory}: format {meta.get('format')!r} v{meta.get('format_version')!r}, "
            f"this code reads {FORMAT!r} v{FORMAT_VERSION}"
        )
    if meta.get("analyzer_version") != ANALYZER_VERSION:
        raise ModelFormatError(
            f"{directory}: fitted with text analyzer v{meta.get('analyzer_version')}, this code has "
            f"v{ANALYZER_VERSION}: the terms would differ, retrain the model"
        )
    try:
        vocabularies = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{directory}: unreadable model files: {exc}") from exc
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    weights = sp.csr_matrix(sp.load_npz(directory / WEIGHTS_FILE))
    return SavedModel(meta=meta, vocabularies=vocabularies, arrays=arrays, weights=weights)
