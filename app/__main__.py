"""`python -m app …` is the `leaderboard` command (used to start workers from `serve`)."""

from app.cli import main

main()
