"""Trace-driven discrete-event simulator of an Argus cluster; it drives the same `ControlPlane`
as the live server."""
