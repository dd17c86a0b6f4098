"""Specs whose layer names and conventions follow a reference implementation."""
