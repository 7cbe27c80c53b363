"""Onboarding: lay out a manifest repo (`init`) and add apps to it (`new-app`), for Argo CD or Flux."""
