"""Tests of pc3d.structures; each module imports the structure classes it uses by name (the import
lists they share are not set-up to factor out)."""
