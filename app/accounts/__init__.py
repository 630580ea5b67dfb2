"""Users, roles, login sessions, API tokens and the login rate limit: plain functions over a session."""
