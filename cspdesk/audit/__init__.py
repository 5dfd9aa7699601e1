"""The append-only audit log. Every state change in billing, collections and support records one event."""
