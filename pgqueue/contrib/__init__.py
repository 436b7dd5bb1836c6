"""Integrations with web frameworks. Each subpackage imports its framework, which pgqueue does not depend on:
``pgqueue.contrib.django`` (docs/frameworks.md)."""
