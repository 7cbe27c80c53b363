"""The manifest repo through git (GitPython): the only package that runs git.

`clone` holds the sparse clones that deploy and promote push from, `checkout` the clone a review job runs
in, and `errors` turns every GitCommandError into one of our errors.
"""

from __future__ import annotations

from gitops_ci.gitrepo.checkout import ReviewCheckout
from gitops_ci.gitrepo.clone import Identity, ManifestClone, Remote, contains_commit, remote_branch_tip

__all__ = ["Identity", "ManifestClone", "Remote", "ReviewCheckout", "contains_commit", "remote_branch_tip"]
