"""The runtime core: executes compiled units on plain asyncio.

It knows nothing of Ray (a Ray backend hosts it in actors) and holds no global state: everything a
run needs is passed in, so one process can host many runtimes."""
