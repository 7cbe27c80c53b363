"""IMAGE arguments in kustomize's `edit set image` syntax, and the image reference grammar.

Pure: strings in, values out. The grammar follows distribution/reference (the one registries enforce):
https://github.com/distribution/reference/blob/main/regexp.go
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from gitops_ci.errors import ImageArgumentError


class Keep(Enum):
    """Leave the field as the entry has it (`*`, or a field the argument does not name)."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
# str: set to this value; None: remove the field; KEEP: leave it alone.
FieldOp = str | None | Literal[Keep.KEEP]

MANAGED_FIELDS: Final = ("newName", "newTag", "digest")

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_RE: Final = re.compile(rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*")
TAG_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE: Final = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_MAX_REPOSITORY_LENGTH = 255
_PRINTABLE_ASCII = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class ImageUpdate:
    """One parsed IMAGE argument: which entry it matches and what it does to each managed field."""

    name: str
    new_name: FieldOp = KEEP
    new_tag: FieldOp = KEEP
    digest: FieldOp = KEEP
    argument: str = ""

    def ops(self) -> dict[str, FieldOp]:
        return {"newName": self.new_name, "newTag": self.new_tag, "digest": self.digest}

    def apply(self, current: Mapping[str, str]) -> dict[str, str]:
        """The managed fields of a matching entry after this update (`current` holds the managed fields)."""
        result = dict(current)
        for field, op in self.ops().items():
            if op is None:
                result.pop(field, None)
            elif op is not KEEP:
                result[field] = op
        return {f: result[f] for f in MANAGED_FIELDS if f in result}

    def reference(self) -> str:
        """The image this update asks for, as `newName[:tag][@digest]` with `*` for kept parts."""
        name = self.name if self.new_name is KEEP or self.new_name is None else self.new_name
        ref = name
        if isinstance(self.new_tag, str):
            ref += f":{self.new_tag}"
        if isinstance(self.digest, str):
            ref += f"@{self.digest}"
        return ref


def validate_repository(value: str, what: str = "new name") -> str:
    if len(value) > _MAX_REPOSITORY_LENGTH or not REPOSITORY_RE.fullmatch(value):
        raise ImageArgumentError(
            f"{what} {value!r} is not a valid image repository: use lowercase path components with an "
            "optional registry host[:port]/ prefix, e.g. registry.example.com:5000/team/app"
        )
    return value


def validate_name(value: str) -> str:
    """The name an images entry matches: what manifests write, so templated names (`gcr.io/<<P>>/x`) pass,
    but only printable ASCII — a look-alike letter or a zero-width space would append a bogus entry."""
    if len(value) > _MAX_REPOSITORY_LENGTH or not _PRINTABLE_ASCII.fullmatch(value) or "=" in value:
        raise ImageArgumentError(
            f"image name {value[:80]!r} must be printable ASCII without spaces (a look-alike or invisible "
            "character?), as the containers' image fields write it"
        )
    if any(c in value for c in "*?[]") or value.startswith(("-", "#")):
        raise ImageArgumentError(
            f"image name {value[:80]!r} holds a glob character or starts with - or #: kustomize matches the "
            "name exactly, so write the image's repository as the manifests do"
        )
    return value


def validate_tag(value: str) -> str:
    if not TAG_RE.fullmatch(value):
        raise ImageArgumentError(
            f"tag {value!r} is not a valid image tag: it must match [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"
        )
    return value


def validate_digest(value: str) -> str:
    if not DIGEST_RE.fullmatch(value):
        raise ImageArgumentError(
            f"digest {value!r} is not valid: use sha256:<64 lowercase hex> or sha512:<128 lowercase hex>"
        )
    return value


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """`host:port/path:tag@digest` → (name, tag, digest); a port is part of the name."""
    digest: str | None = None
    if "@" in ref:
        ref, _, digest = ref.partition("@")
    tag: str | None = None
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        ref, tag = ref[:colon], ref[colon + 1 :]
    return ref, tag, digest


def parse_image_argument(argument: str) -> ImageUpdate:
    """Parse one IMAGE argument (`name=newName:tag@digest`, `name:tag`, `name=`, `name=*:tag`, …)."""
    try:
        return _parse(argument)
    except ImageArgumentError as err:
        raise ImageArgumentError(f"invalid IMAGE {argument!r}: {err}") from None


def _parse(argument: str) -> ImageUpdate:
    if _CONTROL_OR_SPACE.search(argument):
        raise ImageArgumentError("it contains whitespace or a control character")
    if "=" in argument:
        name, _, value = argument.partition("=")
        if not name:
            raise ImageArgumentError("the image name before '=' is empty")
        validate_name(name)
        if value == "":
            return ImageUpdate(name, None, None, None, argument)
        new_name, tag, digest = split_reference(value)
        if new_name == "":
            raise ImageArgumentError("the new name after '=' is empty; write * to keep the current one")
        name_op: FieldOp = KEEP if new_name == "*" else validate_repository(new_name)
        return _with_version(name, name_op, tag, digest, argument)
    name, tag, digest = split_reference(argument)
    if not name:
        raise ImageArgumentError("the image name is empty")
    validate_name(name)
    if tag is None and digest is None:
        raise ImageArgumentError(
            "it sets nothing: use name:tag, name@digest, name=newName or name=newName:tag"
        )
    return _with_version(name, KEEP, tag, digest, argument)


def _with_version(
    name: str, new_name: FieldOp, tag: str | None, digest: str | None, argument: str
) -> ImageUpdate:
    tag_op: FieldOp = KEEP if tag in (None, "*") else validate_tag(tag or "")
    digest_op: FieldOp = KEEP if digest in (None, "*") else validate_digest(digest or "")
    # A new tag replaces a pinned digest and a new digest replaces a tag, unless both are given.
    if isinstance(tag_op, str) and digest is None:
        digest_op = None
    if isinstance(digest_op, str) and tag is None:
        tag_op = None
    return ImageUpdate(name, new_name, tag_op, digest_op, argument)


def parse_image_arguments(arguments: Iterable[str]) -> list[ImageUpdate]:
    """Parse every argument and refuse two that ask different things of the same field of one image."""
    updates = [parse_image_argument(a) for a in arguments]
    seen: dict[tuple[str, str], tuple[FieldOp, str]] = {}
    for update in updates:
        for field, op in update.ops().items():
            if op is KEEP:
                continue
            previous = seen.setdefault((update.name, field), (op, update.argument))
            if previous[0] != op:
                raise ImageArgumentError(
                    f"IMAGE arguments {previous[1]!r} and {update.argument!r} conflict on {field} of "
                    f"{update.name!r}: pass only one of them"
                )
    return updates
