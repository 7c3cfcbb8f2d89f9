"""The snapshots service: the overlayfs snapshotter (overlay.py), its SQLite
metadata (db.py) and the Snapshots gRPC servicer (servicer.py)."""
