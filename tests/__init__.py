"""Burro's tests: `unit/` needs nothing running, `integration/` talks to real servers on loopback;
`support/` holds what both share (data builders, servers, clients, workers, waiting)."""
