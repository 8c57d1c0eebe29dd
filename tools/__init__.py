"""Reviewer and developer tools that are not the running service."""
