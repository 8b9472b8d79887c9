"""Suites per layer: ``raw`` (files as delivered), ``staging`` (cleaning), ``marts`` (what the analyses read) and
``analysis`` (the endpoint and omics tables). Each module exposes ``<layer>_suites(cutoff=None)`` returning
``{table name: SuiteSpec}`` (a second suite on the same table is keyed ``<table>.<aspect>``)."""

from expectations.suites.raw import raw_suites
from expectations.suites.staging import staging_suites

__all__ = ["raw_suites", "staging_suites"]
