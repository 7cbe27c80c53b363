"""The merge-request review of a manifest repo change: the rendered diff and the one note."""
