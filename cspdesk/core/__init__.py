"""Shared kit with no domain knowledge: money, clock, errors, actor, JSON output."""
