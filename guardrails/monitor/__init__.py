"""Monitoring: reference profiles, PSI with calibrated bands, and streaming windows of live decisions.

Pure modules (stdlib, msgspec, numpy) apart from `datafile`, the edge that reads data files.
This package must not import `guardrails.policy.compile` at module level: compile imports it.
"""
