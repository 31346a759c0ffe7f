"""`platform eval`: a unit run over a dataset of inputs, each run scored (`dataset.py`: the JSONL
format and its scorers; `runner.py`: running and scoring; `report.py`: pass rate, tokens, cost,
latency percentiles and the comparison with a baseline)."""
