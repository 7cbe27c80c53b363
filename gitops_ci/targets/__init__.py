"""Where a change goes after it lands: Argo CD, Flux, kubernetes, a push hook; sync and wait."""
