"""Helpers shared by the scripts in scripts/ (stdlib only, Python >= 3.11).

Every script here runs as `python scripts/NAME.py` (the pipeline's steps, .ci/*), so this
directory is sys.path[0] and `from forge_common import ...` works whichever interpreter runs it
(the system python3 or a pipeline environment's). recipes/awq_int4.py runs from recipes/ in the
quantize environment and keeps its own copy of `sha256_file`. A pipeline step whose script imports
this module lists it in its `inputs`, so a change here reruns that step.

Also: a validator of Forge's result files against their committed JSON Schemas (`load_schema`,
`validate`), for the scripts that read those files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    """The file's sha256 as hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- Result files against their JSON Schemas ------------------------------------------------------
#
# Forge's result files have JSON Schemas generated from their Rust types and committed under
# docs/schemas/ (docs/results.md). The scripts run on any python3 without packages, so instead of
# the `jsonschema` library this is a validator of exactly the keywords those schemas use. A schema
# with any other keyword is refused when loaded, so a generator change that adds one fails loudly
# rather than validating nothing. scripts/tests checks it against `jsonschema` on the same files.

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
# Keywords that say nothing about validity (`format` is an annotation in draft 2020-12).
ANNOTATIONS = frozenset({"$schema", "$comment", "title", "description", "default", "format"})
# Keywords the validator implements; `$defs` holds the targets of `$ref`.
KEYWORDS = frozenset({"$defs", "$ref", "type", "properties", "required", "additionalProperties", "items",
                      "anyOf", "oneOf", "allOf", "enum", "const", "minimum", "maximum"})
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})


class SchemaError(Exception):
    """A document that does not match its schema, or a schema this validator cannot apply."""


def load_schema(path: Path) -> dict[str, Any]:
    """The schema in `path`, after checking it uses only the keywords `validate` implements."""
    try:
        schema = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SchemaError(f"{path}: cannot read the schema: {error}") from error
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: a schema is a JSON object")
    check_keywords(schema, f"{path}#")
    return schema


def check_keywords(schema: Any, where: str) -> None:
    """Raise SchemaError naming the first keyword under `schema` that `validate` does not implement."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"{where}: a schema is an object or a boolean, got {json_type(schema)}")
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key not in KEYWORDS:
            raise SchemaError(f"{where}: keyword `{key}` is not implemented by forge_common.validate\n"
                              "hint: teach forge_common.py the keyword, or change the generated schema")
        if key in ("properties", "$defs"):
            for name, sub in value.items():
                check_keywords(sub, f"{where}/{key}/{name}")
        elif key in ("anyOf", "oneOf", "allOf"):
            for index, sub in enumerate(value):
                check_keywords(sub, f"{where}/{key}/{index}")
        elif key in ("items", "additionalProperties"):
            check_keywords(value, f"{where}/{key}")
        elif key == "$ref" and not value.startswith("#/"):
            raise SchemaError(f"{where}: only local `$ref`s (`#/...`) are implemented, got `{value}`")
        elif key == "type" and not set(value if isinstance(value, list) else [value]) <= TYPES:
            raise SchemaError(f"{where}: unknown type {value}")


def validate(document: Any, schema: dict[str, Any], where: str) -> None:
    """Raise SchemaError `WHERE: JSON.PATH: what is wrong` at the first place `document` breaks
    `schema` (a schema from `load_schema`); `where` names the file."""
    problem = first_problem(document, schema, schema, "")
    if problem is not None:
        raise SchemaError(f"{where}: {problem}")


def json_type(value: Any) -> str:
    """The JSON type of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def has_type(value: Any, name: str) -> bool:
    """Draft 2020-12 `type`: an integer is also a number, and so is a float with no fraction."""
    actual = json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == name


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality for `enum` and `const`: `1 == 1.0`, but `true != 1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if has_type(a, "number") and has_type(b, "number"):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def at(path: str, key: str | int) -> str:
    """`levels` + 2 is `levels[2]`; `levels[2]` + `median_tpot_ms` is `levels[2].median_tpot_ms`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def resolve(root: dict[str, Any], ref: str) -> Any:
    """The schema a local `$ref` (`#/$defs/Name`) points at."""
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SchemaError(f"`$ref` {ref} points at nothing")
        node = node[part]
    return node


def first_problem(value: Any, schema: Any, root: dict[str, Any], path: str) -> str | None:
    """What is wrong with `value` at `path` under `schema`, or None when it matches."""
    here = path or "(top level)"
    if isinstance(schema, bool):
        return None if schema else f"{here}: no value is allowed here"
    if "$ref" in schema:
        problem = first_problem(value, resolve(root, schema["$ref"]), root, path)
        if problem is not None:
            return problem
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(has_type(value, name) for name in names):
            return f"{here}: expected {' or '.join(names)}, got {json_type(value)}"
    if "const" in schema and not json_equal(value, schema["const"]):
        return f"{here}: expected {json.dumps(schema['const'])}, got {json.dumps(value)}"
    if "enum" in schema and not any(json_equal(value, option) for option in schema["enum"]):
        return f"{here}: expected one of {json.dumps(schema['enum'])}, got {json.dumps(value)}"
    if has_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{here}: {value} is below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{here}: {value} is above the maximum {schema['maximum']}"
    if isinstance(value, dict):
        problem = object_problem(value, schema, root, path)
        if problem is not None:
            return problem
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problem = first_problem(item, schema["items"], root, at(path, index))
            if problem is not None:
                return problem
    return combination_problem(value, schema, root, path)


def object_problem(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: str) -> str | None:
    """`required`, `properties` and `additionalProperties` of an object."""
    for key in schema.get("required", []):
        if key not in value:
            return f"{path or '(top level)'}: missing required key `{key}`"
    properties = schema.get("properties", {})
    for key, item in value.items():
        if key in properties:
            sub = properties[key]
        elif "additionalProperties" in schema:
            sub = schema["additionalProperties"]
            if sub is False:
                return f"{at(path, key)}: unknown key"
        else:
            continue
        problem = first_problem(item, sub, root, at(path, key))
        if problem is not None:
            return problem
    return None


def combination_problem(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str) -> str | None:
    """`allOf` (every one), `anyOf` (at least one), `oneOf` (exactly one)."""
    for sub in schema.get("allOf", []):
        problem = first_problem(value, sub, root, path)
        if problem is not None:
            return problem
    for keyword in ("anyOf", "oneOf"):
        if keyword not in schema:
            continue
        problems = [first_problem(value, sub, root, path) for sub in schema[keyword]]
        matches = problems.count(None)
        if matches == 0:
            return "; or ".join(p for p in problems if p is not None)
        if keyword == "oneOf" and matches > 1:
            return f"{path or '(top level)'}: matches {matches} of `oneOf`'s schemas, not exactly one"
    return None
