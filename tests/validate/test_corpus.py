"""`gitops-ci validate` over the whole real corpus (../shared/corpus, skipped when absent).

Every corpus dir that builds offline (MANIFEST.tsv `buildable`) must be validated: built as an overlay, as a
base no building overlay includes, or through a built overlay that includes it. Nothing may crash, and the
findings by rule are written as a report (its path is printed; `pytest -s` shows the table).
"""

from __future__ import annotations

import csv
import io
import json
import time
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from gitops_ci.cli import run
from gitops_ci.validate.findings import Severity

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not (CORPUS / "MANIFEST.tsv").exists(), reason=f"corpus not found at {CORPUS}"),
]
CODE_QUALITY_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def buildable_dirs() -> list[str]:
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return sorted(
        {
            f"{r['owner/repo'].replace('/', '__')}/{r['path']}".rpartition("/")[0]
            for r in rows
            if r["buildable"] == "yes"
        }
    )


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, float]:
    out_dir = tmp_path_factory.mktemp("corpus-validate")
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        reports = ["--junit", str(out_dir / "junit.xml"), "--code-quality", str(out_dir / "codequality.json")]
        code = run(["validate", str(CORPUS), "--format", "json", "--jobs", "4", *reports])
    seconds = time.perf_counter() - start
    assert code in (0, 1), err.getvalue()[-3000:]
    data: dict[str, Any] = json.loads(out.getvalue())
    return data, out_dir, seconds


def test_every_buildable_corpus_dir_is_validated(corpus_run: tuple[dict[str, Any], Path, float]) -> None:
    data = corpus_run[0]
    results = {o["path"]: o for o in data["overlays"]}
    covered = {d for o in data["overlays"] if o["built"] for d in o["includes"]}
    not_validated = [d for d in buildable_dirs() if d not in covered]
    assert not_validated == []
    failed = [
        (d, results[d]["error"][:200]) for d in buildable_dirs() if d in results and not results[d]["built"]
    ]
    assert failed == []
    assert sum(o["built"] for o in data["overlays"]) >= 150


def test_findings_by_rule_report(corpus_run: tuple[dict[str, Any], Path, float]) -> None:
    data, out_dir, seconds = corpus_run
    by_rule: dict[str, dict[str, int]] = data["by_rule"]
    assert sum(sum(c.values()) for c in by_rule.values()) == len(data["findings"])
    for severity in Severity:
        assert sum(c.get(severity.value, 0) for c in by_rule.values()) == data["counts"][severity.value]
    assert {"build/failed", "kustomization/missing-reference", "schema/not-checked"} <= set(by_rule)
    overlays = [o for o in data["overlays"] if o["role"] == "overlay"]
    summary = {
        "seconds": round(seconds, 1),
        "tool": data["tool"],
        "overlays": len(overlays),
        "overlays_built": sum(o["built"] for o in overlays),
        "bases_checked_alone": len(data["overlays"]) - len(overlays),
        "objects": sum(o["objects"] for o in data["overlays"]),
        "counts": data["counts"],
        "by_rule": by_rule,
        "timings": data["timings"],
    }
    report = out_dir / "findings-by-rule.json"
    report.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\ncorpus validation report: {report}")
    for rule, counts in by_rule.items():
        print(f"  {rule:36} {counts}")
    print(f"  {summary['overlays']} overlays, {summary['overlays_built']} built, {seconds:.1f} s")


def test_every_finding_points_into_the_corpus(corpus_run: tuple[dict[str, Any], Path, float]) -> None:
    data = corpus_run[0]
    for finding in data["findings"]:
        assert (CORPUS / finding["file"]).is_file(), finding
        assert finding["line"] is None or finding["line"] >= 1


def test_report_files_are_well_formed(corpus_run: tuple[dict[str, Any], Path, float]) -> None:
    data, out_dir, _ = corpus_run
    issues = json.loads((out_dir / "codequality.json").read_text())
    assert len(issues) == len(data["findings"])
    for issue in issues:
        assert issue["severity"] in CODE_QUALITY_SEVERITIES
        assert issue["description"] and issue["check_name"] and len(issue["fingerprint"]) == 32
        assert issue["location"]["lines"]["begin"] >= 1
    suites = ET.parse(out_dir / "junit.xml").getroot()
    cases = list(suites.iter("testcase"))
    overlays = [o for o in data["overlays"] if o["role"] == "overlay"]
    assert len(cases) >= len(overlays)
    assert suites.get("tests") == str(len(cases))
