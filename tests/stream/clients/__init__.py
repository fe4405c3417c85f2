"""Real clients the project did not write, driven as subprocesses by the interop tests."""
