"""A change to the manifest repo as steps: plan, commit, publish (push or merge request), sync, wait."""
