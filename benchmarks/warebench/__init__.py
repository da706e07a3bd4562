"""The benchmark harness of warefs, run as benchmarks/run: one module per group (pack, mount,
remote, run, memory, scaling), the shared harness (harness, servers), and the report (report,
render). No module keeps state between calls; each group gets its arguments.
"""
