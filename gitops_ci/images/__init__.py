"""Image references and the kustomize editor: pure text in, text out (plus set-image's local files)."""
