"""Alembic migrations of the leaderboard database, shipped with the distribution."""
