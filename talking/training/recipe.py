"""Run recipes: a YAML file that names its base, plus ``--set KEY=VALUE`` overrides.

A recipe is a YAML mapping; ``base: other.yaml`` (relative to the recipe's folder) makes it a
small override of that file, as nanoGPT's config files override ``train.py``'s defaults.
Mappings merge key by key (``loss:`` of a recipe changes only the weights it names); any other
value replaces the base's. ``--set`` overrides apply last, with dotted keys for nested values
(``loss.l1=2``) and values read as YAML (``steps=2``, ``init_from=null``,
``architecture.modalities=[image,mel]``). The resolved values are validated into a dataclass
with unknown keys refused (:func:`build`), and a run saves them in its folder.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from talking.errors import TalkingError

BASE_KEY = "base"


def read_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The recipe at ``path`` merged onto its chain of bases (a plain dict)."""
    path = Path(path).resolve()
    if path in _seen:
        raise TalkingError(f"recipe {path} names itself as a base (through {[str(p) for p in _seen]})")
    if not path.is_file():
        raise TalkingError(f"no recipe {path}: give a YAML file from train/configs/")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise TalkingError(f"recipe {path} must be a YAML mapping, got {type(values).__name__}")
    base = values.pop(BASE_KEY, None)
    if base is None:
        return values
    return merge(read_recipe(path.parent / base, (*_seen, path)), values)


def merge(base: dict, override: dict) -> dict:
    """``override`` onto ``base``: mappings merge key by key, other values replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_sets(sets: list[str] | tuple[str, ...]) -> dict:
    """``["loss.l1=2", "steps=3"]`` -> ``{"loss": {"l1": 2}, "steps": 3}`` (values read as YAML)."""
    values: dict = {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise TalkingError(f"--set takes KEY=VALUE (e.g. --set steps=2), got {item!r}")
        *parents, leaf = key.strip().split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(text) if text.strip() else None
    return values


def build(cls: type, values: dict, where: str):
    """``cls(**values)`` with nested dataclass fields built from their mappings; an unknown key
    is an error that names the known ones."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    values = {key: build(hints[key], value, f"{where} {key}")
              if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict) else value
              for key, value in values.items()}
    return cls(**values)


def load_recipe(cls: type, path: str | Path, sets: list[str] | tuple[str, ...] = ()):
    """The recipe at ``path`` with ``sets`` applied, validated into a ``cls`` dataclass."""
    return build(cls, merge(read_recipe(path), parse_sets(sets)), f"config ({path})")
