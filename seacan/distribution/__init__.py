"""Distribution: a client for OCI/Docker registries (the Distribution spec v1.1).

The layers, bottom up:

- :mod:`.reference` parses image references with Docker's normalisation
  (``busybox`` -> ``docker.io/library/busybox:latest``);
- :mod:`.hosts` decides how to reach a registry host: HTTPS with the CA and
  client certificates of a ``certs.d`` directory, or plain HTTP where
  configured (and for loopback, as Docker does);
- :mod:`.auth` finds credentials (Docker's ``config.json``, credential
  helpers) and runs the Basic and Bearer token flows;
- :mod:`.registry` speaks the HTTP API: resolve, fetch and push manifests
  and blobs, mount, list tags.

Nothing here knows about seacan's stores: the Transfer service (in the images
service) moves bytes between a :class:`~.registry.Registry` and the content
store.
"""
