"""A validation report as text, JSON, JUnit XML (one testcase per overlay) or GitLab code quality JSON.

JUnit and code quality are what GitLab's MR widgets read (`artifacts:reports:junit` / `codequality`).
Code quality locations must be repo files: a rendered object's finding points at the file it came from, or at
its overlay's kustomization.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gitops_ci.errors import OperationalError
from gitops_ci.logs import one_line
from gitops_ci.validate.findings import PLAINTEXT_SECRET, Finding, Severity, ValidationReport

_CODE_QUALITY_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}
_CRITICAL_RULES = {PLAINTEXT_SECRET}


def finding_json(f: Finding) -> dict[str, Any]:
    data: dict[str, Any] = {"severity": f.severity.value, "rule": f.rule, "file": f.file, "line": f.line}
    data.update({"object": f.object, "field": f.field, "overlay": f.overlay, "message": f.message})
    return data


def report_json(report: ValidationReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "root": report.root,
        "tool": report.tool,
        "counts": {s.value: report.count(s) for s in Severity},
        "by_rule": report.by_rule(),
        "overlays": [
            {
                "path": o.path,
                "role": o.role,
                "file": o.file,
                "built": o.built,
                "objects": o.objects,
                "seconds": round(o.seconds, 3),
                "error": o.error,
                "findings": sum(f.severity is not Severity.INFO for f in report.findings_of(o)),
                "includes": list(o.includes),
            }
            for o in report.overlays
        ],
        "findings": [finding_json(f) for f in report.findings],
        "timings": report.timings,
    }


def report_text(report: ValidationReport, *, verbose: bool = False) -> str:
    """Findings one per line (one line for a base's problem that several overlays render), then a summary."""
    shown = [f for f in report.findings if verbose or f.severity is not Severity.INFO]
    lines = [_describe_group(first, overlays) for first, overlays in _grouped(shown)]
    if lines:
        lines.append("")
    overlays = [o for o in report.overlays if o.role == "overlay"]
    bases = [o for o in report.overlays if o.role != "overlay"]
    objects = sum(o.objects for o in report.overlays)
    summary = f"{len(overlays)} overlays ({sum(o.built for o in overlays)} built"
    if bases:
        summary += f"; {len(bases)} bases no building overlay includes, {sum(b.built for b in bases)} built"
    summary += f"; {objects} objects): {_count_n(report.count(Severity.ERROR), 'error') or '0 errors'}, "
    summary += _count_n(report.count(Severity.WARNING), "warning") or "0 warnings"
    infos = report.count(Severity.INFO)
    if infos and not verbose:
        summary += f", {_count_n(infos, 'note')} (--verbose shows them)"
    lines.append(summary)
    lines.append("valid" if report.ok else "invalid: fix the errors above")
    return "\n".join(lines) + "\n"


def _grouped(findings: Sequence[Finding]) -> list[tuple[Finding, list[str]]]:
    groups: dict[tuple[object, ...], tuple[Finding, list[str]]] = {}
    for f in findings:
        if f.overlay and not f.file.startswith(f.overlay + "/"):
            kind, _, name = f.object.partition("/")
            key: tuple[object, ...] = (
                f.rule,
                f.file,
                f.line,
                f.field,
                f.message,
                kind,
                name.rpartition("/")[2],
            )
        else:
            key = (f,)
        groups.setdefault(key, (f, []))[1].append(f.overlay)
    return list(groups.values())


def _describe_group(f: Finding, overlays: list[str]) -> str:
    if len(overlays) < 2:
        return f.describe()
    shown = ", ".join(overlays[:3]) + (f" and {len(overlays) - 3} more" if len(overlays) > 3 else "")
    parts = [f.severity.value, f.rule, f.location, f"(in {len(overlays)} overlays: {shown})"]
    parts += [
        p for p in (f.object.split("/")[0] + "/" + f.object.rpartition("/")[2], f"{f.field}:") if p != ":"
    ]
    return one_line(" ".join([*parts, f.message]), limit=10_000)


def junit_xml(report: ValidationReport) -> str:
    suites = ET.Element("testsuites", name="gitops-ci validate")
    suite = ET.SubElement(suites, "testsuite", name="gitops-ci validate")
    cases = [(o.path, o.role, o.file, o.seconds, report.findings_of(o)) for o in report.overlays]
    extra = report.unattached()
    if extra:
        cases.append(("(repository)", "repository", "", 0.0, extra))
    failures = 0
    for name, role, file, seconds, findings in cases:
        case = ET.SubElement(suite, "testcase", classname=f"gitops-ci.validate.{role}", name=_xml(name))
        case.set("time", f"{seconds:.3f}")
        if file:
            case.set("file", _xml(file))
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if errors:
            failures += 1
            failure = ET.SubElement(case, "failure", type=errors[0].rule, message=_count(errors, "error"))
            failure.text = "\n".join(_xml(f.describe()) for f in errors) + "\n"
        others = [f for f in findings if f.severity is not Severity.ERROR]
        if others:
            ET.SubElement(case, "system-out").text = "\n".join(_xml(f.describe()) for f in others) + "\n"
    total_time = sum(case[3] for case in cases)
    for element in (suites, suite):
        element.set("tests", str(len(cases)))
        element.set("failures", str(failures))
        element.set("errors", "0")
        element.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _xml(text: str) -> str:
    """What XML 1.0 can hold: controls escaped, a file name's undecodable bytes (surrogates) as `\\udcff`."""
    return one_line(text, limit=10_000).encode("utf-8", "backslashreplace").decode("utf-8")


def code_quality(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    issues = []
    for f in findings:
        where = " ".join(p for p in (f.object, f.field) if p)
        overlay = (
            f" (rendered by {f.overlay})" if f.overlay and not f.file.startswith(f.overlay + "/") else ""
        )
        issues.append(
            {
                "type": "issue",
                "description": f"{where + ': ' if where else ''}{f.message}{overlay}",
                "check_name": f.rule,
                "fingerprint": fingerprint(f),
                "severity": "critical" if f.rule in _CRITICAL_RULES else _CODE_QUALITY_SEVERITY[f.severity],
                "location": {"path": f.file, "lines": {"begin": f.line or 1}},
            }
        )
    return issues


def fingerprint(f: Finding) -> str:
    """Stable across runs and branches (no line number), so GitLab can tell new findings from old."""
    key = "\x1f".join((f.rule, f.file, f.overlay, f.object, f.field, f.message))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _count(items: Sequence[Any], word: str) -> str:
    return _count_n(len(items), word)


def _count_n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}" if n else ""


def write_reports(report: ValidationReport, *, junit: Path | None, code_quality_file: Path | None) -> None:
    """Write the report files GitLab reads (`artifacts:reports:junit` and `:codequality`)."""
    outputs = []
    if junit is not None:
        outputs.append((junit, junit_xml(report)))
    if code_quality_file is not None:
        outputs.append((code_quality_file, json.dumps(code_quality(report.findings), indent=2) + "\n"))
    for path, text in outputs:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise OperationalError(f"{path}: cannot write the report: {err.strerror}") from None
