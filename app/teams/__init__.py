"""Teams and their API tokens."""
