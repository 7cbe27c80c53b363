"""schema_check against the kubernetes package's models: one object in, issues with field paths out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitops_ci.validate.findings import SCHEMA_MISSING_FIELD, SCHEMA_UNKNOWN_FIELD, SCHEMA_WRONG_TYPE
from gitops_ci.validate.schema import SchemaChecker, format_path

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "shop", "labels": {"app.kubernetes.io/name": "shop"}, "creationTimestamp": None},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "shop"}},
        "template": {
            "metadata": {"labels": {"app": "shop"}},
            "spec": {
                "containers": [
                    {
                        "name": "shop",
                        "image": "registry.example.com/shop:1.0",
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "resources": {"limits": {"cpu": 1, "memory": "256Mi"}, "requests": {"cpu": 0.5}},
                        "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                        "livenessProbe": {"tcpSocket": {"port": 8080}},
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
            },
        },
    },
    "status": {},
}


@pytest.fixture(scope="module")
def checker() -> SchemaChecker:
    return SchemaChecker()


def issues_of(checker: SchemaChecker, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = checker.check(obj)
    assert found is not None
    return [(i.rule, format_path(i.path), i.message) for i in found]


def with_change(path: list[str | int], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(DEPLOYMENT)
    target: Any = obj
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


CONTAINER: list[str | int] = ["spec", "template", "spec", "containers", 0]
C0 = "spec.template.spec.containers[0]"


def test_valid_deployment_has_no_issues_quantities_and_int_or_string_included(checker: SchemaChecker) -> None:
    assert issues_of(checker, DEPLOYMENT) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["spec", "replicas"], "3", ("spec.replicas", 'expected integer, got string "3"')),
        (["spec", "replicas"], 1.5, ("spec.replicas", "expected integer, got number 1.5")),
        (["spec", "replicas"], True, ("spec.replicas", "expected integer, got boolean true")),
        ([*CONTAINER, "image"], 42, (f"{C0}.image", "expected string, got number 42")),
        ([*CONTAINER, "stdin"], "yes", (f"{C0}.stdin", 'expected boolean, got string "yes"')),
        (
            [*CONTAINER, "ports"],
            {"containerPort": 80},
            (f"{C0}.ports", "expected array, got object (mapping)"),
        ),
        ([*CONTAINER[:-1]], [["x"]], (C0, "expected object (mapping), got array")),
        (["metadata", "labels"], ["a"], ("metadata.labels", "expected object (mapping), got array")),
        (
            [*CONTAINER, "resources", "limits", "cpu"],
            True,
            (f"{C0}.resources.limits.cpu", "expected quantity (string or number), got boolean true"),
        ),
    ],
)
def test_wrong_types(
    checker: SchemaChecker, path: list[str | int], value: Any, expected: tuple[str, str]
) -> None:
    assert issues_of(checker, with_change(path, value)) == [(SCHEMA_WRONG_TYPE, *expected)]


def test_unknown_field_with_a_suggestion(checker: SchemaChecker) -> None:
    obj = with_change([*CONTAINER, "imagePullPolicyy"], "Always")
    assert issues_of(checker, obj) == [
        (
            SCHEMA_UNKNOWN_FIELD,
            "spec.template.spec.containers[0].imagePullPolicyy",
            'unknown field "imagePullPolicyy" in Container (did you mean "imagePullPolicy"?)',
        )
    ]
    top = issues_of(checker, with_change(["spce"], {}))
    assert top == [
        (SCHEMA_UNKNOWN_FIELD, "spce", 'unknown field "spce" in Deployment (did you mean "spec"?)')
    ]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ([*CONTAINER, "name"], "spec.template.spec.containers[0].name"),
        (["spec", "selector"], "spec.selector"),
        ([*CONTAINER, "ports", 0, "containerPort"], f"{C0}.ports[0].containerPort"),
    ],
)
def test_missing_required_fields(checker: SchemaChecker, path: list[str | int], field: str) -> None:
    assert issues_of(checker, with_change(path, KeyError)) == [
        (SCHEMA_MISSING_FIELD, field, f'missing required field "{path[-1]}"')
    ]


def test_null_counts_as_missing_for_required_fields_only(checker: SchemaChecker) -> None:
    assert issues_of(checker, with_change([*CONTAINER, "image"], None)) == []
    assert issues_of(checker, with_change([*CONTAINER, "name"], None))[0][0] == SCHEMA_MISSING_FIELD


@pytest.mark.parametrize(
    ("api_version", "kind", "model"),
    [
        ("v1", "Service", "V1Service"),
        ("v1", "Event", "CoreV1Event"),
        ("events.k8s.io/v1", "Event", "EventsV1Event"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "V2HorizontalPodAutoscaler"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "V1ClusterRole"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "V1CustomResourceDefinition"),
        ("serving.knative.dev/v1", "Service", None),  # a CRD named like a built-in kind
        ("bitnami.com/v1alpha1", "SealedSecret", None),
        ("extensions/v1beta1", "Ingress", None),  # removed from Kubernetes and from the client
        ("v1", "ObjectMeta", None),  # a model, but not a kind
        ("", "", None),
    ],
)
def test_kind_to_model(checker: SchemaChecker, api_version: str, kind: str, model: str | None) -> None:
    assert checker.model_for(api_version, kind) == model


def test_custom_resources_are_not_checked(checker: SchemaChecker) -> None:
    assert checker.check({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "spec": 1}) is None


def test_crd_schemas_with_dollar_and_x_kubernetes_keys(checker: SchemaChecker) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                            "properties": {"size": {"type": "integer", "maximum": 10, "default": 3}},
                        }
                    },
                }
            ],
        },
    }
    assert issues_of(checker, crd) == []


def test_a_secrets_values_are_never_quoted_in_an_issue(checker: SchemaChecker) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pins", "labels": {"tier": 7}},
        "stringData": {"pin": 48151623, "flag": True},
        "data": {"key": 314159},
    }
    messages = {format_path(i.path): i.message for i in checker.check(secret) or []}
    assert messages == {
        "metadata.labels.tier": "expected string, got number 7",  # not the secret: shown as ever
        "stringData.pin": "expected string, got number",
        "stringData.flag": "expected string, got boolean",
        "data.key": "expected string (base64), got number",
    }


def test_issues_per_object_are_capped(checker: SchemaChecker) -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["metadata"].update({f"unknown{i}": i for i in range(80)})
    assert len(issues_of(checker, obj)) == 50


def test_kubernetes_is_imported_on_first_use_only() -> None:
    fresh = SchemaChecker()
    assert fresh.import_seconds == 0.0
    fresh.check(DEPLOYMENT)
    assert fresh.import_seconds > 0.0


def test_format_path_quotes_keys_that_are_not_identifiers() -> None:
    assert (
        format_path(("metadata", "labels", "app.kubernetes.io/name"))
        == 'metadata.labels["app.kubernetes.io/name"]'
    )
    assert format_path(("spec", "containers", 0, "image")) == "spec.containers[0].image"
