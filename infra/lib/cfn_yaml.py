"""Load CloudFormation YAML (short-form tags like !Ref/!GetAtt/!Sub) into plain long-form dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_MULTI = {"Ref": "Ref", "Condition": "Condition"}


class _Loader(yaml.SafeLoader):
    pass


def _construct(tag: str):
    name = tag[1:]
    key = _MULTI.get(name, f"Fn::{name}")

    def ctor(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return ctor


for _tag in ("!Ref", "!Condition", "!GetAtt", "!Sub", "!Join", "!Split", "!Select", "!If", "!Equals", "!And",
             "!Or", "!Not", "!FindInMap", "!Base64", "!Cidr", "!GetAZs", "!ImportValue", "!Transform"):
    _Loader.add_constructor(_tag, _construct(_tag))


def load_text(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError("template is not a YAML mapping")
    return data


def load(path: str | Path) -> dict[str, Any]:
    return load_text(Path(path).read_text())
