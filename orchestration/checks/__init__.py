"""Asset checks: great-expectations suites run against the tables the assets wrote."""
