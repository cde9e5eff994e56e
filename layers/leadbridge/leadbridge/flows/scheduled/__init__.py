"""Scheduled work that fans out: the planner, the jobs queue and function, token upkeep. May import every lower flow."""
