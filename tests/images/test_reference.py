from __future__ import annotations

import pytest

from gitops_ci.errors import ImageArgumentError
from gitops_ci.images.reference import (
    KEEP,
    ImageUpdate,
    parse_image_argument,
    parse_image_arguments,
    split_reference,
)

D1 = "sha256:" + "a" * 64
D2 = "sha512:" + "b" * 128


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        (
            "app=registry.example.com/team/app:1.0",
            ImageUpdate("app", "registry.example.com/team/app", "1.0", None),
        ),
        (f"app=reg.io/app@{D1}", ImageUpdate("app", "reg.io/app", None, D1)),
        (f"app=reg.io/app:1.0@{D1}", ImageUpdate("app", "reg.io/app", "1.0", D1)),
        ("app:1.0", ImageUpdate("app", KEEP, "1.0", None)),
        (f"app@{D2}", ImageUpdate("app", KEEP, None, D2)),
        (f"app:v2@{D1}", ImageUpdate("app", KEEP, "v2", D1)),
        ("app=reg.io/app", ImageUpdate("app", "reg.io/app", KEEP, KEEP)),
        ("app=", ImageUpdate("app", None, None, None)),
        ("app=*:1.0", ImageUpdate("app", KEEP, "1.0", None)),
        ("app=reg.io/app:*", ImageUpdate("app", "reg.io/app", KEEP, KEEP)),
        (f"app=*@{D1}", ImageUpdate("app", KEEP, None, D1)),
        (f"app=*:*@{D1}", ImageUpdate("app", KEEP, KEEP, D1)),
        ("localhost:5000/team/app:1.0", ImageUpdate("localhost:5000/team/app", KEEP, "1.0", None)),
        ("app=localhost:5000/team/app:1.0", ImageUpdate("app", "localhost:5000/team/app", "1.0", None)),
        ("app=localhost:5000/team/app", ImageUpdate("app", "localhost:5000/team/app", KEEP, KEEP)),
        ("gcr.io/<<P>>/hello:latest=*:v2", ImageUpdate("gcr.io/<<P>>/hello:latest", KEEP, "v2", None)),
        ("app=reg.io/a__b/c-d.e/f---g:_x.Y-1", ImageUpdate("app", "reg.io/a__b/c-d.e/f---g", "_x.Y-1", None)),
    ],
)
def test_argument_forms(argument: str, expected: ImageUpdate) -> None:
    parsed = parse_image_argument(argument)
    assert (parsed.name, parsed.new_name, parsed.new_tag, parsed.digest) == (
        expected.name,
        expected.new_name,
        expected.new_tag,
        expected.digest,
    )
    assert parsed.argument == argument


@pytest.mark.parametrize(
    ("argument", "fragment"),
    [
        ("app", "sets nothing"),
        ("localhost:5000/app", "sets nothing"),
        ("=reg.io/app:1", "name before '=' is empty"),
        ("app=:1.0", "new name after '=' is empty"),
        ("app=Reg.io/Team/App:1", "not a valid image repository"),
        ("app=reg.io/UPPER:1", "not a valid image repository"),
        ("app=reg.io/app:-bad", "not a valid image tag"),
        ("app:" + "x" * 129, "not a valid image tag"),
        ("app:v1$", "not a valid image tag"),
        ("app@sha256:abc", "digest 'sha256:abc' is not valid"),
        ("app@md5:" + "a" * 32, "is not valid"),
        ("app@sha256:" + "A" * 64, "is not valid"),
        ("app:1.0\n", "control character"),
        ("app:1\x00", "control character"),
        ("ap p:1", "whitespace"),
        ("app=reg.io/app:1\x7f", "control character"),
        ("app=" + "a" * 256, "not a valid image repository"),
    ],
)
def test_invalid_arguments(argument: str, fragment: str) -> None:
    with pytest.raises(ImageArgumentError) as info:
        parse_image_argument(argument)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith("invalid IMAGE ")


def test_new_tag_drops_digest_and_new_digest_drops_tag() -> None:
    current = {"newName": "reg.io/app", "newTag": "1", "digest": D1}
    assert parse_image_argument("app:2").apply(current) == {"newName": "reg.io/app", "newTag": "2"}
    assert parse_image_argument(f"app@{D2}").apply(current) == {"newName": "reg.io/app", "digest": D2}
    assert parse_image_argument(f"app:3@{D2}").apply(current) == {
        "newName": "reg.io/app",
        "newTag": "3",
        "digest": D2,
    }
    assert parse_image_argument("app=").apply(current) == {}
    assert parse_image_argument("app=other.io/app").apply(current) == {**current, "newName": "other.io/app"}


def test_fields_come_out_in_kustomize_order() -> None:
    assert list(parse_image_argument("app=reg.io/app:1").apply({"digest": D1})) == ["newName", "newTag"]
    assert list(parse_image_argument("app=reg.io/app").apply({"newTag": "1"})) == ["newName", "newTag"]


def test_split_reference_keeps_port_in_name() -> None:
    assert split_reference("localhost:5000/team/app:1.0") == ("localhost:5000/team/app", "1.0", None)
    assert split_reference(f"reg:443/app@{D1}") == ("reg:443/app", None, D1)
    assert split_reference("app") == ("app", None, None)


def test_conflicting_arguments_are_refused() -> None:
    with pytest.raises(ImageArgumentError, match="conflict on newTag of 'app'"):
        parse_image_arguments(["app:1", "app=*:2"])
    assert len(parse_image_arguments(["app:1", "app=reg.io/app", "other:1"])) == 3


def test_reference_for_messages() -> None:
    assert parse_image_argument("app=reg.io/app:1").reference() == "reg.io/app:1"
    assert parse_image_argument(f"app@{D1}").reference() == f"app@{D1}"
