"""Pages for people: a tenant's jobs, one job's timeline and loss curve, one evaluation."""
