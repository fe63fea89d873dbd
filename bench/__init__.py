"""Side-by-side benchmarks: the gateway against a bare echo server, driven by the same client (`python -m bench.run`)."""
