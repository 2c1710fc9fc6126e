"""The model registry: tag-model versions in MLflow, what each was trained on, and the aliases that pick one.

``Registry`` (``client``) writes and reads through the MLflow client; ``ChampionResolver`` (``resolver``) reads an
alias and its version straight from the store's tables, for processes that must stay small (the API). The rest:
``entities`` (alias names, errors, records), ``codecs`` (keys and JSON for MLflow), ``artifacts`` (a version's files),
``staging`` and ``registration`` (logging a new version), ``pyfunc`` (the MLflow pyfunc flavour written next to a
version's model files; it imports MLflow, so only ``staging`` imports it, when registering). Importing this package
never imports MLflow.
"""

from tagwatch.registry.artifacts import REQUIRED_META_FILES, read_reference, write_reference
from tagwatch.registry.client import Registry
from tagwatch.registry.codecs import flatten_params, nest_metrics, normalize_version, split_metrics
from tagwatch.registry.entities import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    ChampionSource,
    ModelVersionInfo,
    MoveJournal,
    RegistryError,
    VersionNotFoundError,
    champion_or_none,
)
from tagwatch.registry.resolver import ChampionResolver

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "REQUIRED_META_FILES",
    "ChampionResolver",
    "ChampionSource",
    "ModelVersionInfo",
    "MoveJournal",
    "Registry",
    "RegistryError",
    "VersionNotFoundError",
    "champion_or_none",
    "flatten_params",
    "nest_metrics",
    "normalize_version",
    "read_reference",
    "split_metrics",
    "write_reference",
]
