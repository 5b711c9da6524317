"""Endpoints: real-time (online) and batch scoring of registered models."""
