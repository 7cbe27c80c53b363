"""Check a manifest against the Kubernetes API schema of its kind, with the kubernetes package's models.

The generated model classes carry the schema: `openapi_types` (attribute → type: `str`, `int`, `bool`,
`float`, `datetime`, `object` for int-or-string and free-form fields, `List[X]`, `Dict[str, X]`, or another
model) and `attribute_map` (attribute → JSON key). Required fields are the pydantic fields without a default
(kubernetes ≥ 35), or, in older clients, the attributes whose generated setter raises ValueError on None.
Both are computed once per class. Kinds the client has no model for (CRDs, removed API versions) are not
checked; the caller reports them as information.

The kubernetes package costs ~0.5 s to import, so it is imported on the first check only.
"""

from __future__ import annotations

import difflib
import importlib
import re
import time
from dataclasses import dataclass, replace
from functools import cache
from types import ModuleType, SimpleNamespace
from typing import Any

from gitops_ci.validate.findings import SCHEMA_MISSING_FIELD, SCHEMA_UNKNOWN_FIELD, SCHEMA_WRONG_TYPE

FieldPath = tuple[str | int, ...]
MAX_ISSUES_PER_OBJECT = 50
_SHOWN_VALUE = re.compile(r"^(expected .+, got (?:number|boolean|string)) .*$", re.DOTALL)
# API groups whose kinds the client ships models for; a kind of any other group is a custom resource even
# when its name is Deployment or Service (Knative's serving.knative.dev/v1 Service).
BUILTIN_GROUPS = frozenset(
    {
        "", "apps", "batch", "autoscaling", "policy", "extensions", "networking.k8s.io",
        "rbac.authorization.k8s.io", "storage.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io",
        "apiregistration.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
        "events.k8s.io", "node.k8s.io", "certificates.k8s.io", "flowcontrol.apiserver.k8s.io",
        "resource.k8s.io", "storagemigration.k8s.io", "internal.apiserver.k8s.io", "authentication.k8s.io",
        "authorization.k8s.io",
    }
)  # fmt: skip
# resource.Quantity is a string in the OpenAPI document, but the API server also takes numbers (`cpu: 1`).
_QUANTITIES = {
    "V1ResourceRequirements": {"limits", "requests"},
    "V1VolumeResourceRequirements": {"limits", "requests"},
    "V1EmptyDirVolumeSource": {"size_limit"},
    "V1LimitRangeItem": {"default", "default_request", "max", "max_limit_request_ratio", "min"},
    "V1ResourceQuotaSpec": {"hard"},
    "V1ResourceQuotaStatus": {"hard", "used"},
    "V1PodSpec": {"overhead"},
    "V1Overhead": {"pod_fixed"},
    "V1PersistentVolumeSpec": {"capacity"},
    "V1PersistentVolumeClaimStatus": {"allocated_resources", "capacity"},
    "V1NodeStatus": {"allocatable", "capacity"},
    "V1ResourceFieldSelector": {"divisor"},
    "V2MetricTarget": {"average_value", "value"},
    "V1CSIStorageCapacity": {"capacity", "maximum_volume_size"},
    "V1ContainerStatus": {"allocated_resources"},
}
_LIST = re.compile(r"(?:List|list)\[(.+)\]")
_DICT = re.compile(r"(?:Dict\[str, (.+)\]|dict\(str, (.+)\))")
_PRIMITIVES = {"str", "int", "float", "bool", "object", "datetime", "date", "bytes", "bytearray", "file"}
_TYPE_NAMES = {
    "str": "string", "int": "integer", "float": "number", "bool": "boolean", "datetime": "string (date-time)",
    "date": "string (date)", "bytes": "string (base64)", "bytearray": "string (base64)", "file": "string",
}  # fmt: skip


@dataclass(frozen=True)
class SchemaIssue:
    rule: str
    path: FieldPath
    message: str


def format_path(path: FieldPath) -> str:
    """`spec.template.spec.containers[0].image`; keys that are not identifiers are quoted."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


@dataclass(frozen=True)
class _ModelInfo:
    name: str
    fields: dict[str, tuple[str, str]]  # JSON key -> (attribute, type)
    required: tuple[str, ...]  # JSON keys


class SchemaChecker:
    """Checks objects; what it learns of each model class is computed once."""

    def __init__(self) -> None:
        self.import_seconds = 0.0
        self._models: ModuleType | None = None
        self._infos: dict[str, _ModelInfo | None] = {}

    @property
    def models(self) -> ModuleType:
        if self._models is None:
            start = time.perf_counter()
            self._models = importlib.import_module("kubernetes.client.models")
            self.import_seconds = time.perf_counter() - start
        return self._models

    def model_for(self, api_version: str, kind: str) -> str | None:
        """The model class name for an apiVersion and kind, None for kinds without a model."""
        group, _, version = api_version.rpartition("/")
        if group not in BUILTIN_GROUPS or not version or not kind:
            return None
        prefix = group.split(".")[0].capitalize() or "Core"
        for name in (f"{prefix}{version.capitalize()}{kind}", f"{version.capitalize()}{kind}"):
            info = self._info(name)
            if info is not None and {"apiVersion", "kind", "metadata"} <= info.fields.keys():
                return name
        return None

    def check(self, obj: dict[str, Any]) -> list[SchemaIssue] | None:
        """Issues of one object (at most MAX_ISSUES_PER_OBJECT); None when its kind has no model."""
        model = self.model_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if model is None:
            return None
        issues: list[SchemaIssue] = []
        self._check_model(obj, model, (), issues)
        if obj.get("kind") == "Secret":  # a value under data or stringData is the secret: name only its type
            issues = [_without_value(i) if i.path[:1] in (("data",), ("stringData",)) else i for i in issues]
        return issues[:MAX_ISSUES_PER_OBJECT]

    def _info(self, name: str) -> _ModelInfo | None:
        if name not in self._infos:
            cls = getattr(self.models, name, None)
            types = getattr(cls, "openapi_types", None)
            if cls is None or not isinstance(types, dict):
                self._infos[name] = None
            else:
                keys: dict[str, str] = cls.attribute_map
                required = _required_attributes(cls)
                self._infos[name] = _ModelInfo(
                    name,
                    {keys[attr]: (attr, spec) for attr, spec in types.items()},
                    tuple(keys[attr] for attr in types if attr in required),
                )
        return self._infos[name]

    def _check_model(self, value: Any, model: str, path: FieldPath, issues: list[SchemaIssue]) -> None:
        info = self._info(model)
        if info is None:
            return
        if not isinstance(value, dict):
            issues.append(
                SchemaIssue(SCHEMA_WRONG_TYPE, path, f"expected object (mapping), got {_describe(value)}")
            )
            return
        for key in info.required:
            if value.get(key) is None:
                issues.append(
                    SchemaIssue(SCHEMA_MISSING_FIELD, (*path, key), f'missing required field "{key}"')
                )
        for key, item in value.items():
            found = info.fields.get(key) if isinstance(key, str) else None
            if found is None:
                issues.append(SchemaIssue(SCHEMA_UNKNOWN_FIELD, (*path, str(key)), _unknown(str(key), info)))
            elif item is not None:
                attribute, spec = found
                quantity = attribute in _QUANTITIES.get(model, ())
                self._check_value(item, spec, (*path, key), issues, quantity)

    def _check_value(
        self, value: Any, spec: str, path: FieldPath, issues: list[SchemaIssue], quantity: bool
    ) -> None:
        kind, inner = _parse_type(spec)
        if kind == "list":
            if not isinstance(value, list):
                issues.append(SchemaIssue(SCHEMA_WRONG_TYPE, path, f"expected array, got {_describe(value)}"))
                return
            for i, item in enumerate(value):
                if item is not None:
                    self._check_value(item, inner, (*path, i), issues, quantity)
        elif kind == "dict":
            if not isinstance(value, dict):
                issues.append(
                    SchemaIssue(SCHEMA_WRONG_TYPE, path, f"expected object (mapping), got {_describe(value)}")
                )
                return
            for key, item in value.items():
                if item is not None:
                    self._check_value(item, inner, (*path, str(key)), issues, quantity)
        elif kind == "model":
            self._check_model(value, inner, path, issues)
        elif not _primitive_ok(value, inner, quantity):
            expected = "quantity (string or number)" if quantity else _TYPE_NAMES.get(inner, inner)
            issues.append(
                SchemaIssue(SCHEMA_WRONG_TYPE, path, f"expected {expected}, got {_describe(value)}")
            )


@cache
def _parse_type(spec: str) -> tuple[str, str]:
    spec = spec.strip()
    if match := _LIST.fullmatch(spec):
        return "list", match[1]
    if match := _DICT.fullmatch(spec):
        return "dict", match[1] or match[2]
    return ("primitive", spec) if spec in _PRIMITIVES else ("model", spec)


def _primitive_ok(value: Any, spec: str, quantity: bool) -> bool:
    if spec == "object":
        return True
    if spec == "bool":
        return isinstance(value, bool)
    if spec == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if quantity and isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, str)


def _required_attributes(cls: Any) -> frozenset[str]:
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):  # pydantic models (kubernetes >= 35)
        return frozenset(name for name, f in fields.items() if f.is_required())
    # Older generated models: `if self.local_vars_configuration.client_side_validation and x is None: raise
    # ValueError(...)` in each required attribute's setter.
    probe = cls.__new__(cls)
    probe.local_vars_configuration = SimpleNamespace(client_side_validation=True)
    required = set()
    for attribute in cls.openapi_types:
        try:
            setattr(probe, attribute, None)
        except ValueError:
            required.add(attribute)
    return frozenset(required)


def _unknown(key: str, info: _ModelInfo) -> str:
    close = difflib.get_close_matches(key, list(info.fields), n=1, cutoff=0.75)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f'unknown field "{key}" in {_kind_name(info.name)}{hint}'


def _kind_name(model: str) -> str:
    return re.sub(r"^(?:[A-Z][a-z]+)?V\d+(?:(?:alpha|beta)\d+)?", "", model) or model


def _without_value(issue: SchemaIssue) -> SchemaIssue:
    return replace(issue, message=_SHOWN_VALUE.sub(r"\1", issue.message))


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object (mapping)"
    return type(value).__name__
