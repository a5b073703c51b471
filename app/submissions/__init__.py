"""Submissions: upload, validation, quota, the queue hand-off, and reading results."""
