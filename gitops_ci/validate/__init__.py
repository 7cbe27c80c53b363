"""Offline checks of a manifest repo: kustomize builds, schemas, the seed's rules."""
