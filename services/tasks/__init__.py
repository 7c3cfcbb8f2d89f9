"""The tasks service: Tasks and Events, the shim manager and the event exchange."""
