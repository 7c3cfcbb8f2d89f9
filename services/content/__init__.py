"""The content service: the local blob store (store.py), its per-namespace
records (db.py) and the Content gRPC servicer (servicer.py)."""
