"""The volumes service (see ARCHITECTURE.md)."""
