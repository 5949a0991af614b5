"""Analysis of stored runs, shared by the CLI and the dashboard: the leaderboard (headline rows, ranking,
borrowed budgets, gain over ``frozen``), comparisons against ``frozen``, metric disagreement, and the
published figures beside measured ones. Directions and display come from the metric declarations."""
