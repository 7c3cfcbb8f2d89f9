"""seacan's registry server: the OCI Distribution API over HTTP, its own storage."""
