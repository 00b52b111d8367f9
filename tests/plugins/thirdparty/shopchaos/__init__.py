"""The shop's own drill plugins: shrink a deployment, watch its desired replicas, summarise a run."""
