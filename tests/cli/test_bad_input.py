"""Bad input is exit 2 with one line that says what is wrong, never exit 3 (a bug) or 1 (after trying), and
a refused input writes nothing. Known cases first, then generated hostile values for every input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import CliResult, CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import commit_count, make_bare_repo, rev_parse

KUSTOMIZATION = "images:\n  - name: app0\n    newTag: '1.0'\n"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return make_bare_repo(tmp_path / "srv", "manifests.git", manifest_files(["app0"]))


def deploy(
    gitops: CliRunner, bare: Path, *args: str | Path, image: str = "registry.example.com/app0:2"
) -> CliResult:
    defaults: dict[str, str | Path] = {"--app": "app0", "--env": "dev", "--image": image, "--repo-url": bare}
    given = {a for a in args if isinstance(a, str) and a.startswith("--")}
    extra = [x for key, value in defaults.items() if key not in given for x in (key, value)]
    return gitops("deploy", *extra, *args)


def assert_refused(result: CliResult, fragment: str = "") -> None:
    assert result.code == 2, (result.code, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("gitops-ci: error: ")]
    assert len(errors) == 1 and fragment in errors[0], result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--message", "{app.__init__.__globals__}"), "--message"),
        (("--message", "{app:>99999999999}"), "--message"),
        (("--message", ""), "--message is empty"),
        (("--image", ""), "--image is empty"),
        (("--message", "subj\x1b]0;pwn\x07"), "--message holds"),
        (("--message", "subj\rX"), "--message holds"),
        (("--message", "subj\u202eX"), "--message holds"),
        (("--message", "subj\n\nSigned-off-by: someone else"), "--message holds"),
        (("--path-template", "{app.__class__}/{env}"), "--path-template"),
        (("--path-template", "{env:>99999999999}"), "--path-template"),
        (("--path-template", "kustomize/{app}/*/{env}"), "not a plain directory name"),
        (("--path-template", "kustomize/{app}\n/*\n/{env}"), "--path-template holds a line break"),
        (("--path-template", "-x/{app}/{env}"), "not a plain directory name"),
        (("--path-template", ".git/{app}/{env}"), "inside .git"),
        (("--path-template", "x/.GIT/{app}/{env}"), "inside .git"),
        (("--app", "a" * 5000), "--app"),
        (("--app", "app*"), "--app"),
        (("--app", "app\x1b[31m"), "--app"),
        (("--env", "d?v"), "--env"),
        (("--env", "dev\n"), "--env"),
        (("--branch", "main --origin=x"), "--branch"),
        (("--repo-url", "file::ext::sh -c touch% /tmp/pwned"), "--repo-url"),
        (("--repo-url", "file://user:tok@localhost/srv/manifests.git"), "credentials"),
        (("--repo-url", "--upload-pack=touch /tmp/x"), "--repo-url"),
        (("--repo-url", "ssh://git@gitlab.example.com/group/manifests.git"), "uses ssh://"),
        (("--repo-url", "ftp://u:Secret1234567@gitlab.example.com/g/m.git"), "uses ftp://"),
        (("--ca-file", "/nonexistent/ca.pem"), "--ca-file /nonexistent/ca.pem is not a regular file"),
        (("--ca-file", "/nonexistent/ca.pem", "--transport", "api"), "--ca-file"),
        (("--mr-branch", "-x{app}", "--mode", "merge-request"), "--mr-branch"),
    ],
)
def test_known_bad_deploy_input(gitops: CliRunner, bare: Path, args: tuple[str, ...], fragment: str) -> None:
    head = rev_parse(bare, "main")
    assert_refused(deploy(gitops, bare, *args), fragment)
    assert rev_parse(bare, "main") == head


def test_workdir_that_is_a_file(gitops: CliRunner, bare: Path, tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert_refused(deploy(gitops, bare, "--workdir", file), "--workdir")
    assert file.read_text() == "x"


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.com/app0",
        "аpp0=registry.example.com/app0:2",
        "app0\u200b=registry.example.com/x:2",
        "app*=registry.example.com/app0:2",
        "ap?0=registry.example.com/app0:2",
        "app[0]=registry.example.com/app0:2",
        "#app0=registry.example.com/app0:2",
    ],
)
def test_image_names_that_would_add_a_bogus_entry(gitops: CliRunner, bare: Path, image: str) -> None:
    assert_refused(deploy(gitops, bare, image=image))
    assert commit_count(bare, "main") == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("images: " + "[" * 20000 + "]" * 20000 + "\n", "nests deeper"),
        ("a:\n" + "- " * 5000 + "x\n", "nests deeper"),
        ("? [a, b]\n: c\nimages:\n- name: app0\n", "not a string"),
        ("x: &e {name: app0, newTag: '1'}\nimages:\n- *e\n", "anchor or alias"),
        ("images:\n- &e {name: app0}\n- *e\n", "anchor or alias"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nimages: []\n",
            "aliases expand",
        ),
        ("x: &r [*r]\nimages: []\n", ""),
        ("images:\n- name: app0\n  newTag: '1'\n" + "# padding\n" * 120_000, "larger than"),
        ("\xff\xfe", ""),
    ],
)
def test_known_bad_kustomizations(gitops: CliRunner, tmp_path: Path, text: str, fragment: str) -> None:
    file = tmp_path / "overlay" / "kustomization.yaml"
    file.parent.mkdir()
    file.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")
    before = file.read_bytes()
    assert_refused(gitops("set-image", "--overlay", file.parent, "app0:2.0"), fragment)
    assert file.read_bytes() == before


def test_deploy_refuses_a_bomb_in_the_repo(gitops: CliRunner, tmp_path: Path) -> None:
    files = manifest_files(["app0"])
    files[overlay("app0", "dev")] = "images: " + "[" * 20000 + "]" * 20000 + "\n"
    bare = make_bare_repo(tmp_path / "srv", "manifests.git", files)
    assert_refused(deploy(gitops, bare), "nests deeper")
    assert commit_count(bare, "main") == 1


# --------------------------------------------------------------------------- generated hostile input

FRAGMENTS = [
    "",
    "-",
    "--x",
    "..",
    "/",
    "\n",
    "\r",
    "\x00",
    "\t",
    " ",
    "{",
    "}",
    "{app}",
    "{env}",
    "{image}",
    "{app.x}",
    "{0}",
    "{app:>9999}",
    "{{",
    "}}",
    "*",
    "?",
    "[",
    "]",
    "é",
    "\u200b",
    "а",
    "@",
    "~",
    "^",
    ":",
    "\\",
    "`",
    "x" * 300,
    "%s",
    "$HOME",
    "file::",
    "://",
    "=",
    "app0",
    "dev",
    "main",
    ".lock",
    "@{",
    "sha256:",
    "registry.example.com/",
    "\u202e",
    "'",
    '"',
    "#",
    "&a",
    "*a",
    "!!python/object",
]


def hostile(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4)))


OPTIONS = [
    "--app",
    "--env",
    "--branch",
    "--message",
    "--path-template",
    "--image",
    "--mr-branch",
    "--mr-title",
]


@pytest.mark.parametrize("seed", range(60))
def test_generated_deploy_options_never_crash(gitops: CliRunner, bare: Path, seed: int) -> None:
    rng = random.Random(seed)
    option = OPTIONS[seed % len(OPTIONS)]
    value = hostile(rng)
    mode = ["--mode", "merge-request", "--dry-run"] if option.startswith("--mr") else ["--dry-run"]
    head = rev_parse(bare, "main")
    result = deploy(gitops, bare, option, value, *mode)
    assert result.code in (0, 1, 2), (option, value, result.err)
    assert "Traceback" not in result.err and "gitops-ci bug" not in result.err, (option, value, result.err)
    assert rev_parse(bare, "main") == head


@pytest.mark.parametrize("seed", range(60))
def test_generated_image_arguments_and_files_never_crash(
    gitops: CliRunner, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(1000 + seed)
    file = tmp_path / "kustomization.yaml"
    lines = KUSTOMIZATION.splitlines()
    lines.insert(rng.randrange(len(lines) + 1), hostile(rng))
    file.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    before = file.read_bytes()
    image = hostile(rng) if seed % 2 else f"app0={hostile(rng)}"
    result = gitops("set-image", "--overlay", tmp_path, image)
    assert result.code in (0, 2), (image, before, result.err)
    assert "Traceback" not in result.err and "gitops-ci bug" not in result.err, (image, before, result.err)
    if result.code == 2:
        assert file.read_bytes() == before
