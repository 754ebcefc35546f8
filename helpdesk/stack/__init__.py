"""The local stack: embedded PostgreSQL+pgvector, Valkey and llama.cpp server, plus Celery and Daphne,
started, watched and stopped as one unit by `make run`; the test harness reuses the embedded parts.

This package runs before (and outside) Django: it imports no Django settings.
"""
