"""gitops-ci: the CI half of GitOps for self-hosted GitLab."""

from __future__ import annotations

__version__ = "0.1.0"
