"""Immutable facts: the envelope, one model per event type, the type registry and upcasters."""
