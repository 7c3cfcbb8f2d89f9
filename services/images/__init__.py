"""The images service: containerd's ``Images`` and ``Diff`` gRPC services.

- ``store.py`` / ``db.py``: image records per namespace (SQLite through SQLAlchemy Core);
- ``servicer.py``: ``containerd.services.images.v1.Images``, translation only;
- ``apply.py``: ``Diff.Apply``, the hardened layer unpacker;
- ``differ.py``: ``Diff.Diff``, a layer from the changes between two trees;
- ``diff_servicer.py``: ``containerd.services.diff.v1.Diff``, translation only;
- ``tario.py``: the one module that reads and writes tar streams;
- ``bridge.py``: byte streams between the event loop and a worker thread.
"""
