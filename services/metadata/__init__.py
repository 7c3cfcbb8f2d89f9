"""The metadata service: namespaces (namespaces.py), leases (leases.py), their
SQLite tables (db.py), the garbage collector (collector.py, planning in
:mod:`seacan.gc`) and the Namespaces, Leases and GC servicers (servicer.py)."""
