"""Client intents and the pure deciders that turn them into events. No I/O here."""
