"""Faults and the proxy they act through."""
