"""The networking service (see ARCHITECTURE.md)."""
