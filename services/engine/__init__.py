"""The engine service: ``seacan run -d`` in one request (Engine/Run), orchestrated here by
:mod:`seacan.engine.run` over the other services (servicer.py translates)."""
