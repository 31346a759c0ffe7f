"""Long-term memory layers: episodic memory and knowledge on vector stores, embedders, and the
memory manager that merges, de-duplicates, ranks and fits retrieved items into a token budget.

Working memory (the token-budgeted conversation of one run) lives in `runtime.memory`; this
package is what outlives a run."""
