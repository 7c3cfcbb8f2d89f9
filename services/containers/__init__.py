"""The containers service: container records per namespace (store.py over
db.py) and the Containers gRPC servicer (servicer.py)."""
