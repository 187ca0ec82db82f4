"""Tested helpers behind the mlx-e2e steps and hooks."""
