"""Revision scripts, oldest first by their number."""
