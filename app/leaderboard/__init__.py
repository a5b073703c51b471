"""The leaderboard: ranked views of scored submissions, tie groups, plots and exports."""
