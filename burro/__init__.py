"""The `burro` command: runs the API (`service`), the workers (`workers`) and the sandbox."""
