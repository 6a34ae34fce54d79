"""Tests of the pure resilience state machines (breaker, budget, claims, health)."""
