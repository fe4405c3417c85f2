"""Tools around the service (soak, benchmarks, plots, devices): they use the service; the
service never imports them."""
