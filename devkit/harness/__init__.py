"""The local harness: moto, resources from template.yaml, real handlers. Used by tests, demo and bench."""
