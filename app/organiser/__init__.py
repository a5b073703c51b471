"""Organiser tools: hide, disqualify, rescore, reveal; each action written to the audit log."""
