"""Deploy: the compiled Plan becomes Ray actors hosting the runtime core.

Only `platform apply`, `get`, `delete`, `down`, `runs`, `result` and `run` without `--local`
import this package's Ray modules; `diff` and `reconcile` are pure and import no Ray."""
