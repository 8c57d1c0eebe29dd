"""What the service tells the people who run it: structured logs and Prometheus metrics."""
