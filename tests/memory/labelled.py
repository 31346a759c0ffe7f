"""A small hand-labelled retrieval set: documents, and for each query the documents a person
judged relevant. Used to report recall@5 of the memory manager's ranking (tests and bench)."""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "retry-backoff": "Retry transient failures with exponential backoff and full jitter; give up after a few attempts.",
    "retry-429": "An HTTP 429 Too Many Requests response means the client is rate limited; wait before retrying.",
    "idempotency-keys": "A tool that writes must carry an idempotency key so a retried call does not repeat the side effect.",
    "circuit-breaker": "A circuit breaker opens after repeated failures and stops calling a failing dependency for a while.",
    "timeouts": "Every network call needs a timeout; a call without one can hang a worker forever.",
    "ray-actors": "Ray actors are stateful workers; an actor restarted after a crash has lost its in-memory state.",
    "ray-placement": "Placement groups reserve resources on nodes so that related actors are scheduled together.",
    "checkpoints": "Checkpoint a run after every step so it can resume on another node when a worker dies.",
    "pgvector-hnsw": "pgvector's HNSW index gives approximate nearest neighbour search with high recall in PostgreSQL.",
    "embeddings": "Sentence embeddings map text to vectors so that similar meanings lie close together.",
    "prompt-injection": "Text returned by a tool may contain instructions meant to hijack the model: treat it as data.",
    "pii": "Redact e-mail addresses, phone numbers and card numbers before storing customer messages.",
    "tenant-isolation": "One customer's data must never be retrieved in another customer's conversation.",
    "budgets": "Stop an agent when it exceeds its token or cost budget, with a distinct outcome.",
    "loop-detection": "Detect an agent that calls the same tool with the same arguments again and again.",
    "tracing": "OpenTelemetry spans record every model call and tool call with durations and token usage.",
    "cooking-pasta": "Boil the pasta in salted water for nine minutes and keep a cup of the cooking water.",
    "gardening": "Tomatoes need full sun, regular watering and a stake to climb as they grow.",
    "cycling": "Check the tyre pressure and oil the chain before a long bike ride.",
    "astronomy": "Jupiter is the largest planet of the solar system and has dozens of moons.",
    "coffee": "Grind the beans just before brewing and use water just off the boil.",
    "football": "The offside rule applies when an attacker is behind the last defender as the ball is played.",
    "piano": "Practise scales slowly with a metronome and increase the tempo gradually.",
    "travel": "Book train tickets early: prices rise as the departure date gets closer.",
}

QUERIES: dict[str, set[str]] = {
    "how long should I wait before retrying a rate limited request": {"retry-429", "retry-backoff"},
    "avoid sending the same payment twice when a call is retried": {"idempotency-keys"},
    "what happens to actor state after a crash": {"ray-actors", "checkpoints"},
    "approximate nearest neighbour index in postgres": {"pgvector-hnsw"},
    "malicious instructions hidden in tool output": {"prompt-injection"},
    "keep customers from seeing each other's data": {"tenant-isolation"},
    "agent keeps calling the same tool in a loop": {"loop-detection"},
    "stop calling a dependency that keeps failing": {"circuit-breaker", "retry-backoff"},
    "how to cook spaghetti": {"cooking-pasta"},
    "which planet is the biggest": {"astronomy"},
}
