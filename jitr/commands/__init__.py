"""The ``jitr`` command groups, one module each."""
