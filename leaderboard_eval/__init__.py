"""Evaluate drivers on routes and score them like the CARLA leaderboard (results.json, summaries, videos).

``leaderboard_eval.results`` writes and reads the leaderboard's results.json; the runner
(``python -m leaderboard_eval``) drives route sets closed loop and scores them with
``driving.criteria.RouteMonitor``.
"""
