"""The merge-request review of a manifest repo change: the rendered diff and the one note."""

DEFAULT_MAX_DIFF_LINES = 300
