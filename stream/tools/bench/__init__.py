"""Benchmarks: the frame pipeline sequential vs pipelined (`bench-pipeline`), and the service
end to end per resolution (`bench`)."""
