"""The build service (see ARCHITECTURE.md)."""
