"""Locust-side code only: nothing outside this package imports it (Locust monkey-patches on import)."""
