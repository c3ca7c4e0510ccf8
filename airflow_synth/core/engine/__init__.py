"""The engine room: what produces synthetic values (models, and values issued fresh)."""
