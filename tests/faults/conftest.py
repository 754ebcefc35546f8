"""The fault tests' own desk (tests/faults/stack.py): a PostgreSQL, a Valkey and a Daphne they may restart."""

from tests.faults.stack import fault_db, fault_llm, fault_llm_reset, fault_stack

__all__ = ["fault_db", "fault_llm", "fault_llm_reset", "fault_stack"]
