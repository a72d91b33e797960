"""Evaluation of compiled queries over ECS events."""
