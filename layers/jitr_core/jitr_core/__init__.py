"""Code shared by the registration workflow's functions (deployed as a Lambda layer)."""
