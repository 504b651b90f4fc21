"""Deployment targets the canonical QDQ form is checked (and, where asked, adapted) for."""
