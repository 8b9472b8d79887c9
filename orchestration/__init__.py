"""The Dagster code location: wires ``analysis`` functions into assets, checks, jobs, schedules and sensors."""
