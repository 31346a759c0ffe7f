"""`platform test`: run the Test documents of a spec set and check what their runs did.

`expect` (pure: expectations against an observation), `observe` (the runtime that records tool
calls and guardrail decisions), `runner` (tests in parallel on one asyncio loop), `report` (text
and JUnit XML). Validation of Test documents is part of `validate` (_validate/spec_tests.py)."""
