"""One scalar written by gitops-ci reads back as exactly that string, whatever it holds."""

from __future__ import annotations

import pytest

from gitops_ci.images import yamlconf

VALUES = ["plain", "a: b", "a\nb: c", "x\n", "a\tb", "nul\x00", "bell\x07", "ls\u2028ps\u2029", "\ufeffbom",
          "non\uffff", "non\ufffe", 'q"uote\\',
          "it's", "'", "- item", "# comment", "yes", "1.0", "null", "é ü"]  # fmt: skip


@pytest.mark.parametrize("style", [None, "'", '"'])
@pytest.mark.parametrize("value", VALUES)
def test_a_rendered_scalar_reads_back_as_the_same_string(value: str, style: str | None) -> None:
    rendered = yamlconf.render_scalar(value, style)
    assert "\n" not in rendered and "\x00" not in rendered
    assert yamlconf.load(f"key: {rendered}\nnext: 1\n") == {"key": value, "next": 1}
