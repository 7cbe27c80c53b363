"""Checks of manifests: the rendered objects of an overlay, and the plain YAML files of the repo.

A rendered object's finding points at the file it came from when one of the overlay's kustomizations lists
a file holding an object of that kind and name (name prefixes and suffixes allowed), at the field's line
there; otherwise at the overlay's kustomization file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gitops_ci.validate import yaml_files as validate_yaml
from gitops_ci.validate.findings import PLAINTEXT_SECRET, SCHEMA_NOT_CHECKED, Finding, Severity
from gitops_ci.validate.repo import RepoLayout
from gitops_ci.validate.schema import SchemaChecker, format_path

Document = dict[str, Any]


def mapping_of(value: object) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (repo content has any shape)."""
    return value if isinstance(value, dict) else {}


def object_id(obj: Document) -> str:
    meta = metadata(obj)
    name = str(meta.get("name") or meta.get("generateName") or "?")
    namespace = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{namespace}/{name}" if namespace else f"{obj.get('kind', '?')}/{name}"


def metadata(obj: Document) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def name_of(obj: Document) -> str:
    return str(metadata(obj).get("name") or "")


def is_plaintext_secret(obj: Document) -> bool:
    return (
        obj.get("kind") == "Secret"
        and str(obj.get("apiVersion", "")) == "v1"
        and bool(obj.get("data") or obj.get("stringData"))
    )


class ManifestFiles:
    """Repo files, read and parsed once; only mappings count as documents, an unparsable file has none."""

    def __init__(self, layout: RepoLayout) -> None:
        self.layout = layout
        self._texts: dict[str, str] = {}
        self._docs: dict[str, list[Document]] = {}
        self.refused: dict[str, str] = {}  # path -> why its YAML is not read (alias bomb, too deep)
        self.unreadable: dict[str, str] = {}  # path -> why it has no documents (not UTF-8, not YAML)

    def text(self, path: str) -> str:
        if path not in self._texts:
            try:
                text = (self.layout.root / path).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
                self.unreadable[path] = "not readable as UTF-8"
            self._texts[path] = text
        return self._texts[path]

    def documents(self, path: str) -> list[Document]:
        if path not in self._docs:
            try:
                docs = [d for d in validate_yaml.load_all(self.text(path)) if isinstance(d, dict)]
            except validate_yaml.ShapeError as err:
                self.refused[path] = str(err)
                docs = []
            except validate_yaml.YAMLError as err:
                self.unreadable.setdefault(path, f"not valid YAML ({validate_yaml.describe_error(err)})")
                docs = []
            self._docs[path] = docs
        return self._docs[path]

    def resource_files(self, directory: str) -> list[str]:
        """Files a kustomization lists under `resources` (not the ones it includes through other dirs)."""
        k = self.layout.kustomizations[directory]
        return [r.target for r in k.references if r.kind == "file" and r.field.startswith("resources[")]

    def yaml_files(self, containing: str) -> Iterator[str]:
        kustomization_files = {k.file for k in self.layout.kustomizations.values()}
        for path in sorted(self.layout.files):
            if (
                path.endswith((".yaml", ".yml"))
                and path not in kustomization_files
                and containing in self.text(path)
            ):
                yield path


@dataclass(frozen=True)
class Source:
    file: str
    document: int
    obj: Document


def find_source(files: ManifestFiles, includes: list[str], obj: Document) -> Source | None:
    kind, name = obj.get("kind"), name_of(obj)
    partial: Source | None = None
    for directory in includes:
        for path in files.resource_files(directory):
            for i, doc in enumerate(files.documents(path)):
                if doc.get("kind") != kind:
                    continue
                source_name = name_of(doc)
                if source_name == name:
                    return Source(path, i, doc)
                if partial is None and source_name and source_name in name:
                    partial = Source(path, i, doc)
    return partial


def check_rendered(
    files: ManifestFiles,
    overlay: str,
    docs: list[Document],
    checker: SchemaChecker,
    flagged_secrets: set[tuple[str, str]],
) -> list[Finding]:
    """Schema and plaintext-Secret findings of one overlay's rendered objects."""
    layout = files.layout
    includes = layout.closure(overlay)
    overlay_file = layout.kustomizations[overlay].file
    findings: list[Finding] = []
    unchecked: dict[str, int] = {}
    for obj in docs:
        issues = checker.check(obj)
        if issues is None:
            key = f"{obj.get('apiVersion', '?')} {obj.get('kind', '?')}"
            unchecked[key] = unchecked.get(key, 0) + 1
            issues = []
        secret = is_plaintext_secret(obj)
        if not issues and not secret:
            continue
        source = find_source(files, includes, obj)
        file = source.file if source else overlay_file
        for issue in issues:
            line = _line(files, source, list(issue.path))
            findings.append(
                Finding(
                    Severity.ERROR,
                    issue.rule,
                    file,
                    issue.message,
                    format_path(issue.path),
                    object_id(obj),
                    overlay,
                    line,
                )
            )
        if secret and not (source and (source.file, object_id(source.obj)) in flagged_secrets):
            findings.append(_generated_secret(files, includes, obj, overlay, source))
    return findings + _not_checked(unchecked, overlay_file, overlay)


def _not_checked(unchecked: dict[str, int], overlay_file: str, overlay: str) -> list[Finding]:
    return [
        Finding(
            Severity.INFO,
            SCHEMA_NOT_CHECKED,
            overlay_file,
            f"{count} object(s) of {key} not checked: the kubernetes client has no schema for it "
            "(a custom resource, or a removed API)",
            overlay=overlay,
        )
        for key, count in sorted(unchecked.items())
    ]


def _generated_secret(
    files: ManifestFiles, includes: list[str], obj: Document, overlay: str, source: Source | None
) -> Finding:
    message = (
        "plaintext Secret in the render: its values are in git; use a SealedSecret (or an external secret)"
    )
    if source is not None:
        return Finding(
            Severity.ERROR,
            PLAINTEXT_SECRET,
            source.file,
            message,
            "data",
            object_id(obj),
            overlay,
            _line(files, source, ["data"]),
        )
    for directory in includes:
        k = files.layout.kustomizations[directory]
        for i, generator in enumerate((k.data or {}).get("secretGenerator") or []):
            if isinstance(generator, dict) and str(generator.get("name", "\0")) in name_of(obj):
                message = "secretGenerator makes a plaintext Secret from files in git; use a SealedSecret"
                line = validate_yaml.line_of(k.text, 0, ["secretGenerator", i])
                return Finding(
                    Severity.ERROR,
                    PLAINTEXT_SECRET,
                    k.file,
                    message,
                    f"secretGenerator[{i}]",
                    object_id(obj),
                    overlay,
                    line,
                )
    overlay_file = files.layout.kustomizations[overlay].file
    return Finding(Severity.ERROR, PLAINTEXT_SECRET, overlay_file, message, "data", object_id(obj), overlay)


def scan_repo_secrets(files: ManifestFiles) -> list[Finding]:
    """Plaintext Secrets in any YAML file of the repo, whether or not an overlay uses it."""
    findings = []
    for path in files.yaml_files(containing="Secret"):
        for i, doc in enumerate(files.documents(path)):
            if is_plaintext_secret(doc):
                field = "data" if doc.get("data") else "stringData"
                findings.append(
                    Finding(
                        Severity.ERROR,
                        PLAINTEXT_SECRET,
                        path,
                        f"plaintext Secret in git ({field}); seal it with kubeseal (SealedSecret) instead",
                        field,
                        object_id(doc),
                        line=validate_yaml.line_of(files.text(path), i, [field]),
                    )
                )
    return findings


def _line(files: ManifestFiles, source: Source | None, path: list[str | int]) -> int | None:
    if source is None:
        return None
    return validate_yaml.line_of(files.text(source.file), source.document, path)
