"""The OCI runtime spec: Docker's defaults, converted once at the edge."""
