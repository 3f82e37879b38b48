"""Spaktok Live: an event-sourced CQRS live-streaming backend on Kafka."""

__version__ = "0.1.0"
