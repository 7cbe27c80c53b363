"""The manifest repo behind one port: its git adapter, credentials, signing, and GitLab's API."""
