"""The embedded local runtime: the project's SAM template, state machine and handlers on moto."""
