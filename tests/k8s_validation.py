"""Offline validators for rendered manifests; each returns every problem it finds, as text.

- Kubernetes objects: the strict OpenAPI schemas of each version that `kubernetes-validate` ships (unknown
  fields are errors), for the versions we claim.
- KServe's InferenceService: KServe's own Python models (the `kserve` package, installed without its
  dependencies by scripts/setup.sh): every key must be an attribute of the model at that place, every value of
  the model's type, required attributes present; the Kubernetes types KServe embeds (containers, volumes,
  affinity, ...) go to the same Kubernetes schemas.
- ServiceMonitor: the Prometheus Operator CRD's models (`cloudcoil-models-prometheus-operator`, generated from
  the CRD's OpenAPI schema), parsed and dumped again: a field the schema lacks does not survive the round trip.
- YAML text: yamllint's default rules, warnings included.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import re
import sys
import types
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from yamllint import linter
from yamllint.config import YamlLintConfig

K8S_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")
_SCHEMAS = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"


@functools.cache
def _schema_dir(version: str) -> Any:
    folder = _SCHEMAS / f"v{version}.0-local-strict"
    if not folder.is_dir():
        raise LookupError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    return folder


@functools.cache
def _registry(version: str) -> referencing.Registry:
    definitions = json.loads((_schema_dir(version) / "_definitions.json").read_text())
    return referencing.Registry().with_resource(
        _DEFINITIONS_URI, referencing.Resource.from_contents(definitions, referencing.jsonschema.DRAFT202012)
    )


@functools.cache
def _definition_names(version: str) -> frozenset[str]:
    return frozenset(json.loads((_schema_dir(version) / "_definitions.json").read_text())["$defs"])


def _errors(schema: dict[str, Any], value: Any, version: str, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, registry=_registry(version))
    return [
        f"{version} {'.'.join([where, *map(str, e.absolute_path)])}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    ]


def kubernetes_errors(obj: dict[str, Any], version: str) -> list[str]:
    """`obj` against the strict schema of its kind and apiVersion in Kubernetes `version`."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])  # apps/v1 → apps-v1
    path = _schema_dir(version) / f"{obj['kind'].lower()}-{group_version}.json"
    if not path.is_file():
        raise LookupError(f"Kubernetes {version} has no schema for {obj['kind']} {obj['apiVersion']}")
    return _errors(json.loads(path.read_text()), obj, version, obj["kind"])


def definition_errors(value: Any, definition: str, version: str, where: str = "") -> list[str]:
    """`value` against one definition of the Kubernetes API (io.k8s.api.core.v1.Container, ...)."""
    schema = {"$id": "https://kubernetes.io/api/fragment.json", "$ref": f"/api/_definitions.json#/$defs/{definition}"}
    return _errors(schema, value, version, where or definition)


# --- KServe ---------------------------------------------------------------------------------------------------


@functools.cache
def kserve_models() -> types.ModuleType:
    """`kserve.models` without `kserve/__init__.py`, which starts importing KServe's model server (FastAPI,
    uvicorn, gRPC, pandas); the generated API models need only six, urllib3 and kserve.configuration."""
    if "kserve" not in sys.modules:
        spec = importlib.util.find_spec("kserve")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("kserve is not installed: run scripts/setup.sh (pip install --no-deps kserve)")
        package = types.ModuleType("kserve")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["kserve"] = package
    import kserve.models

    return kserve.models


_PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (float, int)}


def _kubernetes_definition(type_name: str, version: str) -> str:
    """KServe's name for an embedded Kubernetes type (V1Container, ResourceQuantity) → its API definition."""
    if type_name == "ResourceQuantity":
        return "io.k8s.apimachinery.pkg.api.resource.Quantity"
    match = re.fullmatch(r"V1([A-Z]\w*)", type_name)
    found = [d for d in _definition_names(version) if match and d.endswith(f".v1.{match.group(1)}")]
    if len(found) != 1:
        raise LookupError(f"no single Kubernetes definition for KServe's {type_name}: {found}")
    return found[0]


def _kserve_value(type_name: str, value: Any, where: str, versions: tuple[str, ...], errors: list[str]) -> Any:
    """Build the KServe model for `value` at `where`, recording every mismatch in `errors`."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list of {type_name[5:-1]}")
            return None
        return [_kserve_value(type_name[5:-1], v, f"{where}[{i}]", versions, errors) for i, v in enumerate(value)]
    if type_name.startswith("dict("):
        inner = type_name[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping of {inner}")
            return None
        return {k: _kserve_value(inner, v, f"{where}.{k}", versions, errors) for k, v in value.items()}
    if type_name in _PRIMITIVES:
        wrong_bool = isinstance(value, bool) and type_name != "bool"
        if wrong_bool or not isinstance(value, _PRIMITIVES[type_name]):
            errors.append(f"{where}: {value!r} is not a {type_name}")
        return value
    if type_name == "object":
        return value
    model = getattr(kserve_models(), type_name, None)
    if model is None:  # a Kubernetes type embedded in KServe's
        for version in versions:
            errors.extend(definition_errors(value, _kubernetes_definition(type_name, version), version, where))
        return value
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a {type_name} mapping")
        return None
    attributes = {json_key: attr for attr, json_key in model.attribute_map.items()}
    errors.extend(f"{where}.{key}: {type_name} has no such field" for key in value if key not in attributes)
    kwargs = {
        attributes[key]: _kserve_value(model.openapi_types[attributes[key]], v, f"{where}.{key}", versions, errors)
        for key, v in value.items()
        if key in attributes
    }
    try:
        return model(**kwargs)
    except ValueError as exc:  # a required attribute is missing or a value is not among the allowed ones
        errors.append(f"{where}: {exc}")
        return None


def kserve_errors(obj: dict[str, Any], versions: tuple[str, ...] = K8S_VERSIONS) -> list[str]:
    """An InferenceService against KServe's V1beta1InferenceService model."""
    errors: list[str] = []
    _kserve_value("V1beta1InferenceService", obj, obj.get("kind", "?"), versions, errors)
    return errors


# --- ServiceMonitor ---------------------------------------------------------------------------------------------


def service_monitor_errors(obj: dict[str, Any]) -> list[str]:
    """A ServiceMonitor against the Prometheus Operator CRD's models: validated, and nothing dropped."""
    import pydantic
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    try:
        parsed = ServiceMonitor.model_validate(obj)
    except pydantic.ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    kept = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if kept == obj:
        return []
    lost = sorted(_leaves(obj) - _leaves(kept))
    return [f"not in the ServiceMonitor schema (dropped or changed by it): {path}" for path in lost] or [f"{kept}"]


def _leaves(value: Any, path: str = "") -> set[str]:
    """`a.b[0].c=value` for every leaf of nested mappings and lists."""
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else k)}
    if isinstance(value, list):
        return {leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")}
    return {f"{path}={value!r}"}


# --- YAML ---------------------------------------------------------------------------------------------------------

_YAMLLINT = YamlLintConfig("extends: default")


def yamllint_problems(text: str) -> list[str]:
    """yamllint's default configuration; a warning counts as much as an error."""
    return [f"{p.line}:{p.column} {p.level}: {p.message}" for p in linter.run(text, _YAMLLINT)]
