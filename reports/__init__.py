"""Reads a run directory (never the cluster) and renders the self-contained HTML report."""
