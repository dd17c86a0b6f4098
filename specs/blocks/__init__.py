"""Shared block libraries included by several specs."""
