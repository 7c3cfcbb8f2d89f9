"""The volumes service: volumes on disk and who uses them (store.py over db.py, copyup.py)
and the Volumes gRPC servicer (servicer.py)."""
